using System.Collections.Concurrent;
using System.IO.Compression;

namespace Orchestrator.Worker.Training;

/// <summary>Fashion-MNIST read from the IDX gzip files (Debian's dataset-fashion-mnist), kept as raw bytes.</summary>
public sealed class FashionMnist
{
    public const int Pixels = 28 * 28;
    public const int Classes = 10;
    // The training set's mean and standard deviation of pixel/255.
    const float Mean = 0.2860f, Std = 0.3530f;
    static readonly float[] Normalized = Enumerable.Range(0, 256).Select(v => (v / 255f - Mean) / Std).ToArray();
    static readonly ConcurrentDictionary<string, Lazy<FashionMnist>> Cache = new();

    public byte[] TrainImages { get; }
    public byte[] TrainLabels { get; }
    public byte[] TestImages { get; }
    public byte[] TestLabels { get; }
    public int TrainCount => TrainLabels.Length;
    public int TestCount => TestLabels.Length;

    FashionMnist(byte[] trainImages, byte[] trainLabels, byte[] testImages, byte[] testLabels)
    {
        (TrainImages, TrainLabels, TestImages, TestLabels) = (trainImages, trainLabels, testImages, testLabels);
    }

    /// <summary>Loads once per process and folder; every job on the node shares the bytes. A load that failed is not
    /// kept: the next job tries again (the data may have been installed since).</summary>
    public static FashionMnist Load(string folder)
    {
        var key = Path.GetFullPath(folder);
        var entry = Cache.GetOrAdd(key, f => new Lazy<FashionMnist>(() => Read(f)));
        try { return entry.Value; }
        catch
        {
            Cache.TryRemove(new KeyValuePair<string, Lazy<FashionMnist>>(key, entry));
            throw;
        }
    }

    /// <summary>The most bytes one IDX file may hold once decompressed (Fashion-MNIST's largest is 47 MB): a header
    /// that claims more is refused before anything is allocated, so a small gzip bomb cannot fill the memory.</summary>
    public const long MaxIdxBytes = 1L << 30;

    static FashionMnist Read(string folder)
    {
        var trainImages = ReadIdx(Path.Combine(folder, FashionMnistFiles.TrainImages), 2051, out var n1);
        var trainLabels = ReadIdx(Path.Combine(folder, FashionMnistFiles.TrainLabels), 2049, out var n2);
        var testImages = ReadIdx(Path.Combine(folder, FashionMnistFiles.TestImages), 2051, out var n3);
        var testLabels = ReadIdx(Path.Combine(folder, FashionMnistFiles.TestLabels), 2049, out var n4);
        if (n1 != n2 || n3 != n4)
            throw new InvalidDataException($"Fashion-MNIST in {folder}: image and label counts differ ({n1} vs {n2}, {n3} vs {n4}); reinstall dataset-fashion-mnist");
        foreach (var (labels, name) in new[] { (trainLabels, FashionMnistFiles.TrainLabels), (testLabels, FashionMnistFiles.TestLabels) })
        {
            if (labels.Any(l => l >= Classes)) throw new InvalidDataException($"{name}: a label is outside 0-9; the file is corrupt");
        }
        return new FashionMnist(trainImages, trainLabels, testImages, testLabels);
    }

    /// <summary>Reads an IDX file (big-endian header: magic, counts, dims) and checks its size against the header
    /// while decompressing: no more than the header announces (and <see cref="MaxIdxBytes"/>) is ever read.</summary>
    static byte[] ReadIdx(string path, int expectedMagic, out int count)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} is missing on this node; install dataset-fashion-mnist there or fix data.path", path);
        using var gz = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
        // Bytes decompressed into the span (fewer only at the end of the file).
        int Fill(Span<byte> into)
        {
            try { return gz.ReadAtLeast(into, into.Length, throwOnEndOfStream: false); }
            catch (InvalidDataException e) { throw new InvalidDataException($"{path} is not a valid gzip file ({e.Message})"); }
        }
        Span<byte> head = stackalloc byte[8];
        if (Fill(head) < head.Length) throw new InvalidDataException($"{path} is truncated: no IDX header");
        var magic = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(head);
        if (magic != expectedMagic) throw new InvalidDataException($"{path}: IDX magic {magic}, expected {expectedMagic}; this is not the right Fashion-MNIST file");
        count = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(head[4..]);
        var dims = magic & 0xff;
        Span<byte> sizes = stackalloc byte[4 * (dims - 1)];
        if (Fill(sizes) < sizes.Length) throw new InvalidDataException($"{path} is truncated inside its IDX header");
        long itemSize = 1;
        for (int d = 0; d < dims - 1; d++) itemSize *= System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(sizes[(4 * d)..]);
        if (dims == 3 && itemSize != Pixels) throw new InvalidDataException($"{path}: images are not 28×28");
        var total = count * itemSize;
        if (count < 0 || total > MaxIdxBytes)
            throw new InvalidDataException($"{path}: its header announces {count} items of {itemSize} bytes; at most {MaxIdxBytes >> 20} MiB are read");
        var data = GC.AllocateUninitializedArray<byte>((int)total);
        var read = Fill(data);
        if (read < data.Length || Fill(stackalloc byte[1]) > 0)
            throw new InvalidDataException($"{path} is truncated or padded: its header says {count} items of {itemSize} bytes ({total} bytes), the file holds {(read < data.Length ? $"{read}" : "more")}");
        return data;
    }

    /// <summary>Writes normalized pixels of the given images into <paramref name="destination"/> (count × 784).</summary>
    public static void Gather(byte[] images, ReadOnlySpan<int> indices, Span<float> destination)
    {
        for (int i = 0; i < indices.Length; i++)
        {
            var src = images.AsSpan(indices[i] * Pixels, Pixels);
            var dst = destination.Slice(i * Pixels, Pixels);
            for (int p = 0; p < Pixels; p++) dst[p] = Normalized[src[p]];
        }
    }

    /// <summary>The order of training images in a training epoch: a seeded shuffle, the same wherever the job runs.</summary>
    public static int[] TrainingEpochOrder(int count, int seed, int trainingEpoch)
    {
        var order = Enumerable.Range(0, count).ToArray();
        // Random(int) is the stable seeded generator; HashCode would differ between processes.
        new Random(unchecked(seed * 1_000_003 + trainingEpoch)).Shuffle(order);
        return order;
    }
}
