using System.Diagnostics;

namespace Orchestrator.Tests.Adversarial;

/// <summary>
/// Hostile job specs (tests/adversarial/specs, and generated ones too large to keep as files): each is refused by the
/// CLI's reader and by a live silo's submit path with a message that names the field, quickly, without building what
/// the document describes, and the silos stay up.
/// </summary>
public class AdversarialSpecTests
{
    static readonly SpecValidationOptions NoFiles = new() { CheckFiles = false };

    public static string Folder => Path.Combine(Repo.Root, "tests", "adversarial", "specs");

    /// <summary>Each corpus file with the field its refusal names and a fragment of what it says.</summary>
    public static TheoryData<string, string, string> Corpus()
    {
        var rows = new TheoryData<string, string, string>();
        foreach (var line in File.ReadAllLines(Path.Combine(Folder, "expected.tsv")).Where(l => l.Length > 0 && !l.StartsWith('#')))
        {
            var cells = line.Split('\t');
            rows.Add(cells[0], cells[1], cells[2]);
        }
        return rows;
    }

    [Fact]
    public void EveryCorpusFile_HasAnExpectation()
    {
        var listed = Corpus().Select(row => (string)row[0]).ToHashSet();
        var files = Directory.GetFiles(Folder).Select(Path.GetFileName).Where(f => f != "expected.tsv");
        Assert.Equal(files.Order(), listed.Order());
    }

    [Theory, MemberData(nameof(Corpus))]
    public void ACorpusSpec_IsRefused_NamingTheField(string file, string field, string fragment)
    {
        var e = Assert.Throws<SpecValidationException>(() => JobSpecParser.Parse(File.ReadAllText(Path.Combine(Folder, file)), NoFiles));
        Assert.Contains(e.Errors, error => error.Field == field && error.Message.Contains(fragment));
    }

    /// <summary>60 KB of '[' overflowed a silo's stack: YamlDotNet built the tree recursively before the depth check.</summary>
    [Theory]
    [InlineData("train: ", "")]
    [InlineData("{\"train\": ", "")]
    [InlineData("train: ", "]")]
    public void ADeeplyNestedSpec_IsRefusedWhileReading(string prefix, string close)
    {
        var text = prefix + new string('[', 60_000) + string.Concat(Enumerable.Repeat(close, 60_000));
        var clock = Stopwatch.StartNew();
        var e = Assert.Throws<SpecValidationException>(() => JobSpecParser.Parse(text, NoFiles));
        Assert.Contains("nested deeper than 32 levels", e.Message);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"took {clock.Elapsed.TotalMilliseconds:F0} ms");
    }

    /// <summary>A 411-byte alias bomb took a silo from 194 MB to 1.6 GB: aliases were expanded before any rule ran.</summary>
    [Fact]
    public void AnAliasBomb_IsRefusedAtItsFirstAnchor_WithoutExpanding()
    {
        var text = File.ReadAllText(Path.Combine(Folder, "alias-bomb.yaml"));
        var before = GC.GetAllocatedBytesForCurrentThread();
        var clock = Stopwatch.StartNew();
        var e = Assert.Throws<SpecValidationException>(() => JobSpecParser.Parse(text, NoFiles));
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Contains("line 2", e.Message); // the first anchor, before any alias
        Assert.True(allocated < 4 << 20, $"allocated {allocated / 1024} KiB reading a {text.Length}-byte document");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"took {clock.Elapsed.TotalMilliseconds:F0} ms");
    }

    [Fact]
    public void ADocumentOfTooManyValues_IsRefused()
    {
        var yaml = "name: wide\nmodel: {type: mlp, hidden: [" + string.Join(",", Enumerable.Repeat("1", 20_000)) + "]}\n";
        Assert.Contains("more than 10000 values", Assert.Throws<SpecValidationException>(() => JobSpecParser.Parse(yaml, NoFiles)).Message);
        var json = "{\"name\": \"wide\", \"x\": [" + string.Join(",", Enumerable.Repeat("1", 20_000)) + "]}";
        Assert.Contains("more than 10000 values", Assert.Throws<SpecValidationException>(() => JobSpecJson.Read(json, NoFiles)).Message);
    }

    [Fact]
    public void ValidOwners_InAnyScript_AreAccepted()
    {
        foreach (var owner in new[] { "ml-platform", "équipe données", "データ基盤", "team 🚀" })
            Assert.Equal(owner, JobSpecParser.Parse($"name: ok\nowner: \"{owner}\"\nmodel: {{type: mlp}}\ndata: {{dataset: fashion-mnist}}", NoFiles).Owner);
    }

    /// <summary>The wire form is JSON only: a YAML document sent straight to a grain never meets a YAML parser.</summary>
    [Fact]
    public void TheWireForm_IsAJsonObjectOnly()
    {
        var yaml = "name: ok\nmodel: {type: mlp}\ndata: {dataset: fashion-mnist}";
        Assert.Contains("canonical JSON object", Assert.Throws<SpecValidationException>(() => JobSpecJson.Read(yaml, NoFiles)).Message);
        Assert.Contains("no spec", Assert.Throws<SpecValidationException>(() => JobSpecJson.Read(null, NoFiles)).Message);
        var spec = JobSpecParser.Parse(yaml, NoFiles);
        Assert.Equal(spec, JobSpecJson.Read(JobSpecJson.Write(spec), NoFiles));
    }

    [Fact]
    public async Task ALiveSilo_RefusesEveryHostileSpec_Quickly_AndStaysUp()
    {
        var fixture = new ClusterFixture();
        await fixture.InitializeAsync();
        try
        {
            var payloads = Corpus().Select(row => File.ReadAllText(Path.Combine(Folder, (string)row[0])))
                .Append("{\"train\": " + new string('[', 60_000))
                .Append("train: " + new string('[', 60_000))
                .Append(new string('{', 2 << 20))
                .Append("")
                .ToList();
            var n = 0;
            foreach (var payload in payloads)
            {
                var id = $"hostile-{n++}";
                var clock = Stopwatch.StartNew();
                var e = await Assert.ThrowsAsync<ArgumentException>(() => fixture.Grains.GetGrain<IJobGrain>(id).Submit(new JobSubmission(payload, "attacker")));
                Assert.StartsWith("invalid job spec", e.Message);
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"payload {n - 1} took {clock.Elapsed.TotalMilliseconds:F0} ms");
                await Assert.ThrowsAsync<KeyNotFoundException>(() => fixture.Grains.GetGrain<IJobGrain>(id).GetInfo());
            }
            var valid = JobSpecJson.Write(JobSpecParser.Parse("name: ok\nmodel: {type: mlp}\ndata: {dataset: fashion-mnist}", NoFiles));
            await Assert.ThrowsAsync<ArgumentException>(() => fixture.Grains.GetGrain<IJobGrain>("no-submitter").Submit(new JobSubmission(valid, new string('x', 1000))));
            await Assert.ThrowsAsync<ArgumentNullException>(() => fixture.Grains.GetGrain<IJobGrain>("null").Submit(null!));
            Assert.Equal(2, (await fixture.Grains.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true)).Count);
        }
        finally { await fixture.DisposeAsync(); }
    }
}
