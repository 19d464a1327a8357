using System.Text;

namespace Orchestrator.Tests;

/// <summary>
/// Mutated job specs (YAML and JSON: wrong types, huge numbers, deep nesting, unknown fields, invalid UTF-8, cut
/// documents, a 10 MB document) go to validation and to a live cluster's submit path: each is accepted as valid or
/// refused with a message that names the field; nothing else escapes, the silos stay up, and no refused job exists.
/// </summary>
public class SpecFuzzTests
{
    const int Mutants = 2000;
    static readonly SpecValidationOptions NoFiles = new() { CheckFiles = false };

    /// <summary>Every shipped example, as written and as canonical JSON.</summary>
    static List<string> Seeds()
    {
        var yaml = Directory.GetFiles(Path.Combine(Repo.Root, "examples"), "*.yaml").Select(File.ReadAllText).ToList();
        return [.. yaml, .. yaml.Select(y => JobSpecJson.Write(JobSpecParser.Parse(y, NoFiles)))];
    }

    static readonly string[] Values =
    [
        "-1", "0", "1e309", "99999999999999999999999", "-9223372036854775809", "NaN", ".inf", "true", "null", "~", "\"\"", "[]", "{}",
        "[1, [2, [3]]]", "\"x\"", "0x10", "1.5", "'quoted'", "&anchor 1", "*alias", "!!binary aGk=", "\"\\u0000\"", new string('9', 400),
    ];

    static readonly string[] Fields = ["name", "kind", "model", "data", "train", "resources", "fusion", "workers", "gradients", "embedding", "priority", "owner", "mystery"];

    /// <summary>One seeded mutation of a seed document.</summary>
    static string Mutate(string text, Random rng)
    {
        if (text.Length == 0) return Values[rng.Next(Values.Length)];
        switch (rng.Next(9))
        {
            case 0: // a value replaced by a value of another type or an absurd size
            {
                var colon = Positions(text, ':').ToList();
                if (colon.Count == 0) goto default;
                var at = colon[rng.Next(colon.Count)] + 1;
                var end = text.IndexOfAny([',', '\n', '}'], at);
                return text[..at] + " " + Values[rng.Next(Values.Length)] + (end < 0 ? "" : text[end..]);
            }
            case 1: // a line dropped
            {
                var lines = text.Split('\n').ToList();
                lines.RemoveAt(rng.Next(lines.Count));
                return string.Join('\n', lines);
            }
            case 2: // an unknown or repeated field
                return text.TrimStart().StartsWith('{')
                    ? "{\"" + Fields[rng.Next(Fields.Length)] + "\": " + Values[rng.Next(Values.Length)] + "," + text.TrimStart()[1..]
                    : Fields[rng.Next(Fields.Length)] + ": " + Values[rng.Next(Values.Length)] + "\n" + text;
            case 3: // deep nesting
            {
                var depth = rng.Next(30, 400);
                return text.TrimStart().StartsWith('{')
                    ? "{\"train\": " + new string('[', depth) + new string(']', depth) + "}"
                    : "train: " + new string('[', depth) + new string(']', depth);
            }
            case 4: // cut anywhere
                return text[..rng.Next(text.Length)];
            case 5: // invalid UTF-8 bytes, decoded as a reader of the file would
            {
                var bytes = Encoding.UTF8.GetBytes(text).ToList();
                for (int i = 0; i < 3; i++) bytes.Insert(rng.Next(bytes.Count), (byte)rng.Next(0x80, 0x100));
                return Encoding.UTF8.GetString(bytes.ToArray());
            }
            case 6: // characters swapped
            {
                var chars = text.ToCharArray();
                for (int i = 0; i < 4; i++)
                {
                    int a = rng.Next(chars.Length), b = rng.Next(chars.Length);
                    (chars[a], chars[b]) = (chars[b], chars[a]);
                }
                return new string(chars);
            }
            case 7: // a sequence or scalar where a map belongs
                return rng.Next(2) == 0 ? "- " + text.Replace("\n", "\n  ") : Values[rng.Next(Values.Length)];
            default: // two mutations
                return Mutate(Mutate(text, rng), rng);
        }
    }

    static IEnumerable<int> Positions(string text, char c)
    {
        for (int i = text.IndexOf(c); i >= 0; i = text.IndexOf(c, i + 1)) yield return i;
    }

    static IEnumerable<string> MutatedSpecs(int seed)
    {
        var rng = new Random(seed);
        var seeds = Seeds();
        for (int i = 0; i < Mutants; i++) yield return Mutate(seeds[rng.Next(seeds.Count)], rng);
    }

    static readonly string[] KnownFields = ["(document)", "(blank key)", "name", "kind", "owner", "priority", "model", "data", "train", "resources", "fusion", "workers", "gradients", "embedding"];

    [Fact]
    public void EveryMutatedSpec_IsAcceptedOrRefusedNamingAField()
    {
        int accepted = 0, refused = 0;
        foreach (var text in MutatedSpecs(seed: 11).Append(new string('a', 10 * 1024 * 1024)))
        {
            try
            {
                JobSpecParser.Parse(text, NoFiles);
                accepted++;
            }
            catch (SpecValidationException e)
            {
                refused++;
                Assert.NotEmpty(e.Errors);
                // Each error names a known field (or the document), or the unknown field exactly as the user wrote it.
                Assert.All(e.Errors, error =>
                {
                    Assert.True(KnownFields.Any(f => error.Field == f || error.Field.StartsWith(f + ".") || error.Field.StartsWith(f + "["))
                                || (error.Field.Length > 0 && text.Contains(error.Field.Split('.')[^1])), $"'{error.Field}' names no field of the input");
                    Assert.False(string.IsNullOrWhiteSpace(error.Message));
                });
            }
        }
        Assert.Equal(Mutants + 1, accepted + refused);
        Assert.True(refused > Mutants / 2, $"only {refused} refused: the mutations are too gentle");
        Assert.True(accepted > 0, "no mutant was valid: the mutations never keep a spec usable");
    }

    [Fact]
    public async Task ALiveCluster_AcceptsOrRefusesEveryMutatedSpec_AndKeepsNoRefusedJob()
    {
        var fixture = new ClusterFixture();
        await fixture.InitializeAsync();
        try
        {
            var refusedIds = new List<string>();
            var n = 0;
            foreach (var text in MutatedSpecs(seed: 12).Take(600))
            {
                var id = $"fuzz-{n++}";
                try
                {
                    await fixture.Grains.GetGrain<IJobGrain>(id).Submit(new JobSubmission(text, "fuzz", DeferEnqueue: true));
                }
                catch (ArgumentException e)
                {
                    Assert.StartsWith("invalid job spec", e.Message);
                    refusedIds.Add(id);
                }
            }
            Assert.NotEmpty(refusedIds);
            Assert.Equal(2, (await fixture.Grains.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true)).Count);
            var listed = (await fixture.Grains.GetGrain<IJobIndexGrain>(SchedulerKeys.Cluster).List()).Select(j => j.JobId).ToHashSet();
            Assert.DoesNotContain(refusedIds, listed.Contains);
            foreach (var id in refusedIds.Take(50))
                await Assert.ThrowsAnyAsync<Exception>(() => fixture.Grains.GetGrain<IJobGrain>(id).GetInfo());
        }
        finally { await fixture.DisposeAsync(); }
    }
}
