using System.IO.Compression;
using Orchestrator.Core.Recommendation;
using Orchestrator.Worker.Training;

namespace Orchestrator.Tests.Adversarial;

/// <summary>
/// Data files that are not what they claim: a gzip bomb behind a valid IDX header, headers announcing absurd sizes,
/// an endless line where Criteo text belongs. Each fails with what is wrong before its memory is spent; a load that
/// failed is tried again once the data is fixed.
/// </summary>
public class AdversarialDataFileTests
{
    static readonly int[] Tables = Enumerable.Repeat(1000, CriteoFormat.CategoricalFeatures).ToArray();

    /// <summary>A copy of Fashion-MNIST whose training labels file is replaced by <paramref name="write"/>'s bytes, gzipped.</summary>
    static string WithTrainLabels(Action<Stream> write)
    {
        var dir = Directory.CreateTempSubdirectory("idx-attack").FullName;
        foreach (var f in FashionMnistFiles.All) File.Copy(Path.Combine(FashionMnistFiles.DefaultPath, f), Path.Combine(dir, f));
        using var gz = new GZipStream(File.Create(Path.Combine(dir, FashionMnistFiles.TrainLabels)), CompressionLevel.Fastest);
        write(gz);
        return dir;
    }

    static byte[] BigEndian(int value) => [.. BitConverter.GetBytes(value).Reverse()];

    [Fact]
    public void AGzipBombBehindAValidHeader_IsRefused_AfterReadingOnlyWhatTheHeaderAnnounced()
    {
        // 60,000 labels announced, then 256 MiB of zeros (a quarter of a megabyte compressed).
        var dir = WithTrainLabels(gz =>
        {
            gz.Write([.. BigEndian(2049), .. BigEndian(60_000)]);
            var zeros = new byte[1 << 20];
            for (int i = 0; i < 256; i++) gz.Write(zeros);
        });
        var before = GC.GetTotalAllocatedBytes(precise: true);

        var e = Assert.Throws<InvalidDataException>(() => FashionMnist.Load(dir));

        Assert.Contains("padded", e.Message);
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        Assert.True(allocated < 200 << 20, $"{allocated >> 20} MiB allocated"); // the three real files are 55 MB; the bomb's 256 MiB never
    }

    [Theory]
    [InlineData(int.MaxValue)]
    [InlineData(-1)]
    public void AnIdxHeaderAnnouncingAnAbsurdSize_IsRefusedBeforeAllocation(int count)
    {
        var dir = WithTrainLabels(gz => gz.Write([.. BigEndian(2049), .. BigEndian(count), 1, 2, 3]));
        var e = Assert.Throws<InvalidDataException>(() => FashionMnist.Load(dir));
        Assert.Contains($"announces {count} items", e.Message);
    }

    [Fact]
    public void AFileThatIsNotGzip_IsNamedAsSuch()
    {
        var dir = WithTrainLabels(_ => { });
        File.WriteAllText(Path.Combine(dir, FashionMnistFiles.TrainLabels), "this is not gzip at all, just text that goes on for a while");
        Assert.Contains("not a valid gzip file", Assert.Throws<InvalidDataException>(() => FashionMnist.Load(dir)).Message);
    }

    /// <summary>A failed load was cached until the worker restarted: installing the data did not help.</summary>
    [Fact]
    public void AFailedLoad_IsNotCached_TheNextLoadFindsTheFixedData()
    {
        var dir = Directory.CreateTempSubdirectory("idx-late").FullName;
        Assert.Throws<FileNotFoundException>(() => FashionMnist.Load(dir));

        foreach (var f in FashionMnistFiles.All) File.Copy(Path.Combine(FashionMnistFiles.DefaultPath, f), Path.Combine(dir, f));

        Assert.Equal(60_000, FashionMnist.Load(dir).TrainCount);
    }

    /// <summary>data.path: /dev/zero ran a worker out of memory: ReadLine waited for a line break that never comes.</summary>
    [Fact]
    public void AnEndlessLine_IsRefusedAtTheLineLimit()
    {
        var before = GC.GetTotalAllocatedBytes(precise: true);
        var e = Assert.Throws<InvalidDataException>(() => CriteoFormat.Read("/dev/zero", Tables).First());
        Assert.Contains($"/dev/zero:1: a line longer than {CriteoFormat.MaxLineChars} characters", e.Message);
        using var cursor = new CriteoCursor("/dev/zero", Tables);
        Assert.Throws<InvalidDataException>(() => cursor.Read(0, 10));
        Assert.True(GC.GetTotalAllocatedBytes(precise: true) - before < 16 << 20);
    }

    [Fact]
    public void CriteoLines_AreNumberedAcrossBuffers_AndCarriageReturnsDropped()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("criteo").FullName, "day.tsv");
        var line = string.Join('\t', ["1", .. Enumerable.Repeat("3", CriteoFormat.DenseFeatures), .. Enumerable.Repeat("abc", CriteoFormat.CategoricalFeatures)]);
        // Long enough that lines straddle the reader's 64 Ki-character buffer; one line is bad, one CRLF.
        File.WriteAllText(path, string.Join('\n', Enumerable.Range(0, 2000).Select(i => i == 1500 ? "bad" : i == 7 ? line + "\r" : line)) + "\n");

        var e = Assert.Throws<InvalidDataException>(() => CriteoFormat.Read(path, Tables).ToList());

        Assert.Contains($"{path}:1501:", e.Message);
        Assert.Equal(1500, CriteoFormat.Read(path, Tables).Take(1500).Count());
        Assert.Equal(2000, CriteoFormat.Count(path));
    }
}
