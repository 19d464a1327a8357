using YamlDotNet.Serialization;

namespace Orchestrator.Cli.Chaos;

/// <summary>
/// A chaos scenario (examples/chaos/*.yaml): the cluster to start, the jobs to submit (spec files relative to the
/// scenario, with --set style overrides), and a fault timeline: fixed faults and/or a seeded random schedule.
/// Times are seconds after the first job reports progress.
/// </summary>
public sealed class ChaosScenario
{
    public string Name { get; set; } = "";
    public int? Seed { get; set; }
    public ScenarioCluster Cluster { get; set; } = new();
    public List<ScenarioJob> Jobs { get; set; } = [];
    public List<ScenarioFault> Faults { get; set; } = [];
    public RandomFaults? Random { get; set; }
    /// <summary>Seconds the whole run may take before it is scored as timed out.</summary>
    public double Timeout { get; set; } = 300;
    /// <summary>Seconds after a silo or worker died before the runner starts a replacement (as Kubernetes would).</summary>
    public double RestartAfter { get; set; } = 5;

    public static ChaosScenario Load(string path)
    {
        var scenario = ScenarioFiles.Load<ChaosScenario>(path, "name, seed, cluster, jobs, faults, random, timeout, restartAfter");
        scenario.Validate(Path.GetFileName(path));
        foreach (var job in scenario.Jobs) job.File = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, job.File));
        return scenario;
    }

    void Validate(string file)
    {
        var problems = new List<string>();
        if (Cluster.Silos is < 1 or > 16) problems.Add($"cluster.silos: {Cluster.Silos}, give 1 to 16");
        if (Cluster.Workers is < 1 or > 16) problems.Add($"cluster.workers: {Cluster.Workers}, give 1 to 16");
        if (Jobs.Count == 0) problems.Add("jobs: give at least one job (file: a job spec)");
        for (int i = 0; i < Jobs.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(Jobs[i].File)) problems.Add($"jobs[{i}].file: the job spec to submit");
            if (Jobs[i].Copies is < 1 or > 64) problems.Add($"jobs[{i}].copies: {Jobs[i].Copies}, give 1 to 64");
        }
        for (int i = 0; i < Faults.Count; i++)
        {
            var f = Faults[i];
            if (ChaosFaults.Parse(f.Fault) is not { } kind) problems.Add($"faults[{i}].fault: '{f.Fault}', one of {string.Join(", ", ChaosFaults.Names)}");
            else if (kind == ChaosFault.NanGradients && (f.Job < 0 || f.Job >= Jobs.Count)) problems.Add($"faults[{i}].job: {f.Job}, the index of a job in jobs");
            if (f.At < 0) problems.Add($"faults[{i}].at: {f.At}, give seconds ≥ 0");
        }
        if (Random is { } r)
        {
            if (r.Faults is < 1 or > 1000) problems.Add($"random.faults: {r.Faults}, give 1 to 1000");
            if (r.Over <= 0) problems.Add($"random.over: {r.Over}, give the seconds to spread them over");
            foreach (var k in r.Kinds.Where(k => ChaosFaults.Parse(k) is null or ChaosFault.NanGradients))
                problems.Add($"random.kinds: '{k}', one of {string.Join(", ", ChaosFaults.Names.Where(n => n != ChaosFaults.Name(ChaosFault.NanGradients)))}");
        }
        if (Timeout <= 0) problems.Add($"timeout: {Timeout}, give seconds");
        if (problems.Count > 0) throw new UsageException($"invalid chaos scenario {file}:" + Environment.NewLine + string.Join(Environment.NewLine, problems.Select(p => "  " + p)));
    }

    /// <summary>The fixed faults and the random schedule drawn from <paramref name="seed"/>, in time order.</summary>
    public List<ScenarioFault> Timeline(int seed)
    {
        var faults = Faults.ToList();
        if (Random is { } r)
        {
            var rng = new System.Random(seed);
            var kinds = r.Kinds.Count > 0 ? r.Kinds : [ChaosFaults.Name(ChaosFault.KillSilo), ChaosFaults.Name(ChaosFault.KillWorker), ChaosFaults.Name(ChaosFault.HangWorker)];
            for (int i = 0; i < r.Faults; i++)
                faults.Add(new ScenarioFault { At = Math.Round(rng.NextDouble() * r.Over, 1), Fault = kinds[rng.Next(kinds.Count)], Target = "random", For = 8 });
        }
        return faults.OrderBy(f => f.At).ToList();
    }
}

public sealed class ScenarioCluster
{
    public int Silos { get; set; } = 2;
    public int Workers { get; set; } = 2;
    /// <summary>Each worker's devices (--devices).</summary>
    public string Devices { get; set; } = "cpu:1";
}

public sealed class ScenarioJob
{
    public string File { get; set; } = "";
    /// <summary>Overrides as for orch submit --set: "train.steps=300".</summary>
    public List<string> Set { get; set; } = [];
    /// <summary>Copies of the job (with seeds 1, 2, ...): compatible copies are fused into one array.</summary>
    public int Copies { get; set; } = 1;
    /// <summary>A Criteo job: write its data.path first (this many examples, orch data criteo-synth) if it is missing.</summary>
    public int Generate { get; set; }
}

public sealed class ScenarioFault
{
    public double At { get; set; }
    /// <summary>The fault as written (kill-silo, …); see <see cref="Kind"/>.</summary>
    public string Fault { get; set; } = "";
    /// <summary>The fault's kind, read from <see cref="Fault"/> (validated when the scenario loads).</summary>
    [YamlIgnore] public ChaosFault Kind => ChaosFaults.Parse(Fault) ?? throw new InvalidOperationException($"unknown fault '{Fault}'");
    /// <summary>A node id (w1), a silo index (0 = the lowest port), "job:N" (the node running job N of jobs; rank 0 of a
    /// data-parallel job), or "random".</summary>
    public string Target { get; set; } = "random";
    /// <summary>Seconds a hang, slowdown, call loss or Redis outage lasts.</summary>
    public double For { get; set; } = 10;
    public double Delay { get; set; } = 200;
    public double Rate { get; set; } = 0.2;
    /// <summary>nan-gradients: the index of the job in jobs, its rank and how many steps.</summary>
    public int Job { get; set; }
    public int Rank { get; set; }
    public int Steps { get; set; } = 3;

    public override string ToString() => Kind switch
    {
        ChaosFault.HangWorker => $"hang-worker {Target} for {For:0.#} s",
        ChaosFault.SlowNode => $"slow-node {Target} +{Delay:0} ms for {For:0.#} s",
        ChaosFault.DropCalls => $"drop-calls {Target} {Rate:P0} for {For:0.#} s",
        ChaosFault.RedisOutage => $"redis-outage for {For:0.#} s",
        ChaosFault.NanGradients => $"nan-gradients job {Job} rank {Rank} for {Steps} steps",
        _ => $"{Fault} {Target}",
    };
}

public sealed class RandomFaults
{
    public int Faults { get; set; }
    public double Over { get; set; }
    public List<string> Kinds { get; set; } = [];
}

/// <summary>The faults a scenario can inject.</summary>
public enum ChaosFault { KillSilo, KillWorker, HangWorker, SlowNode, DropCalls, RedisOutage, NanGradients }

/// <summary>Fault kinds as scenario files write them (kebab-case).</summary>
public static class ChaosFaults
{
    public static IEnumerable<string> Names => Enum.GetValues<ChaosFault>().Select(Name);

    public static string Name(ChaosFault kind) => string.Concat(kind.ToString().Select((c, i) => char.IsUpper(c) && i > 0 ? $"-{char.ToLowerInvariant(c)}" : char.ToLowerInvariant(c).ToString()));

    public static ChaosFault? Parse(string name) => Enum.GetValues<ChaosFault>().Cast<ChaosFault?>().FirstOrDefault(k => Name(k!.Value) == name);

    /// <summary>Crashes and hangs: the cluster must notice them (a dead silo, a lost node or a restarted worker).</summary>
    public static bool IsDetectable(this ChaosFault kind) => kind is ChaosFault.KillSilo or ChaosFault.KillWorker or ChaosFault.HangWorker;
}
