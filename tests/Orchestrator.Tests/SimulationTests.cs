using Microsoft.Extensions.DependencyInjection;
using Orchestrator.Core.Reliability;
using Orchestrator.Core.Scheduling;
using Orchestrator.Core.Simulation;

namespace Orchestrator.Tests;

/// <summary>The discrete-event simulator: deterministic, driven by the production policy, and in agreement with the
/// study's closed-form model where that model applies.</summary>
public class SimulationTests
{
    static SimulationSettings Small(int seed, bool fusion = true, LargeJobRecovery recovery = LargeJobRecovery.CheckpointRestart) =>
        new(Devices: 512, Days: 2, Seed: seed, Workload: new WorkloadModel(JobsPerHour: 30, SmallFraction: 0.9, SmallMedianMinutes: 30, LargeMedianHours: 3, SweepSize: 8, LargeSizes: [16, 64], LargeWeights: [0.7, 0.3]),
            Failures: new FailureModel(PerThousandNodeDays: 200), LargeRecovery: recovery, Fusion: fusion);

    [Fact]
    public void TheSameSeed_GivesTheSameEventLog_AndAnotherSeedAnother()
    {
        string Log(int seed, out SimulationResult result)
        {
            var writer = new StringWriter();
            result = new ClusterSimulator(Small(seed), SchedulingPolicies.Production()).Run("run", writer);
            return writer.ToString();
        }
        var first = Log(3, out var a);
        var again = Log(3, out var b);
        var other = Log(4, out var c);

        Assert.Equal(first, again);
        Assert.Equal(a.EventLogHash, b.EventLogHash);
        // Everything but the host's timings is equal.
        var none = new Dictionary<FailureCategory, double>();
        IReadOnlyList<LargeJobOutcome> noJobs = [];
        Assert.Equal(a with { WallSeconds = 0, PolicySeconds = 0, LargeJobs = noJobs, LostDeviceHours = none }, b with { WallSeconds = 0, PolicySeconds = 0, LargeJobs = noJobs, LostDeviceHours = none });
        Assert.Equal(a.LostDeviceHours, b.LostDeviceHours);
        Assert.Equal(a.LargeJobs, b.LargeJobs);
        Assert.NotEqual(a.EventLogHash, c.EventLogHash);
        Assert.True(a.JobsCompleted > 100 && a.Failures > 0, $"{a.JobsCompleted} jobs completed, {a.Failures} failures: the run exercised nothing");
    }

    [Fact]
    public async Task TheSimulatorAndTheSchedulerGrain_UseTheSamePolicyClass()
    {
        var fixture = new ClusterFixture();
        await fixture.InitializeAsync();
        try
        {
            var silo = fixture.Cluster.Silos[0].ServiceProvider.GetRequiredService<ISchedulingPolicy>();
            Assert.Equal(silo.GetType(), SchedulingPolicies.Production().GetType());
            Assert.IsType<PriorityBestFitPolicy>(silo);
        }
        finally { await fixture.DisposeAsync(); }
    }

    [Fact]
    public void WithFailuresOnly_SimulatedEttrAndMttf_MatchTheClosedFormWithinFivePercent()
    {
        // 2,048 devices (256 nodes) at 8× RSC-1's rate fail as often as a 16,384-device job at RSC-1's: the study's
        // 0.93 / 0.68 regime at 5- and 60-minute checkpoints with 5-minute restarts. 10 runs of 14 days each.
        const int devices = 2048;
        const double rate = 8 * ReliabilityModel.Rsc1PerThousandNodeDays;
        var nodes = devices / ReliabilityModel.GpusPerNode;
        foreach (var interval in new[] { 5.0, 60.0 })
        {
            var runs = Enumerable.Range(1, 10).Select(seed => BigJobRun.Run(devices, 14, seed, rate, interval, restartMinutes: 5)).ToList();
            var ettr = runs.Average(r => r.Ettr);
            var mttfHours = runs.Sum(r => r.Mttf.TotalHours * r.Failures) / runs.Sum(r => r.Failures);
            var modelEttr = ReliabilityModel.ExpectedEttr(nodes, rate / 1000, TimeSpan.FromMinutes(interval), TimeSpan.Zero, TimeSpan.FromMinutes(5));
            var modelMttf = ReliabilityModel.JobMttf(nodes, rate / 1000).TotalHours;
            Assert.True(Math.Abs(ettr - modelEttr) / modelEttr < 0.05, $"interval {interval} min: simulated ETTR {ettr:F4}, model {modelEttr:F4}");
            Assert.True(Math.Abs(mttfHours - modelMttf) / modelMttf < 0.05, $"interval {interval} min: simulated MTTF {mttfHours:F3} h, model {modelMttf:F3} h");
        }
    }

    [Fact]
    public void FusionAndRecoveryChoices_ChangeOutcomesAsTheirModelsSay()
    {
        var fused = new ClusterSimulator(Small(5), SchedulingPolicies.Production()).Run("fused");
        var alone = new ClusterSimulator(Small(5, fusion: false), SchedulingPolicies.Production()).Run("alone");
        var coded = new ClusterSimulator(Small(5, recovery: LargeJobRecovery.ErasureCoded), SchedulingPolicies.Production()).Run("coded");

        Assert.Equal(fused.JobsSubmitted, alone.JobsSubmitted);
        // Fused, a sweep shares one device: far fewer placements, and each member trains slower than alone (2.07/8 of
        // its speed at width 8), so a small job's time on the device is longer.
        Assert.True(fused.Decisions * 2 < alone.Decisions, $"placements fused {fused.Decisions}, alone {alone.Decisions}");
        Assert.True(fused.CompletionSmall.P50 - fused.QueueingSmall.P50 > alone.CompletionSmall.P50 - alone.QueueingSmall.P50,
            $"median small job: fused {fused.CompletionSmall.P50:F2} h, alone {alone.CompletionSmall.P50:F2} h");
        // No rollback: erasure-coded large jobs lose less device time to failures than checkpoint-restart.
        Assert.True(coded.LostDeviceHours.Values.Sum() < fused.LostDeviceHours.Values.Sum(),
            $"lost device-hours: erasure-coded {coded.LostDeviceHours.Values.Sum():F1}, checkpoint {fused.LostDeviceHours.Values.Sum():F1}");
    }

    [Fact]
    public void ATrace_RoundTripsThroughCsv_AndABadLineNamesItsField()
    {
        var jobs = new WorkloadModel(JobsPerHour: 20).Generate(new Random(1), 3600 * 5, 1024);
        var csv = new StringWriter();
        WorkloadTrace.Write(csv, jobs);
        var back = WorkloadTrace.Read(new StringReader(csv.ToString()), "trace.csv");
        Assert.Equal(jobs, back);

        var bad = Assert.Throws<FormatException>(() => WorkloadTrace.Read(new StringReader($"{WorkloadTrace.Header}\n0,8,60,large,\n5,x,60,small,k"), "t.csv"));
        Assert.Contains("line 3: devices 'x'", bad.Message);
    }

    [Fact]
    public void ThePolicy_PlacesTheSameWhetherTheQueueComesSortedOrShuffled_AndStopsScanningWhenFull()
    {
        var random = new Random(2);
        var queue = Enumerable.Range(0, 20_000).Select(i => random.NextDouble() < 0.03
            ? new PendingJob($"g{i}", 1, i, 16, Gang: true, MaxDevices: 16)
            : new PendingJob($"s{i}", random.Next(2), i, 1, $"k{i / 8}")).ToList();
        var nodes = Enumerable.Range(0, 64).Select(n => new NodeCapacity($"n{n}", Enumerable.Range(0, random.Next(0, 4)).Select(d => $"d{d}").ToList())).ToList();
        var sorted = queue.OrderBy(j => j, Comparer<PendingJob>.Create(PriorityBestFitPolicy.Compare)).ToList();
        var shuffled = queue.OrderBy(_ => random.Next()).ToList();
        var policy = SchedulingPolicies.Production();

        static string Describe(SchedulingDecision d) => string.Join(";", d.Placements.Select(p => $"{string.Join(",", p.JobIds)}@{string.Join(",", p.Slots)}"));
        var a = policy.Decide(sorted, nodes);
        Assert.NotEmpty(a.Placements);
        Assert.Equal(Describe(a), Describe(policy.Decide(shuffled, nodes)));
        Assert.Equal(Describe(a), Describe(policy.Decide(new OrderedQueue(shuffled), nodes)));
        // A queue fifty times longer behind the same head places exactly the same.
        var longer = sorted.Concat(Enumerable.Range(20_000, 1_000_000).Select(i => new PendingJob($"t{i}", 0, i, 1, $"k{i / 8}"))).ToList();
        Assert.Equal(Describe(a), Describe(policy.Decide(new OrderedQueue(longer), nodes)));
    }

    [Fact]
    public void AnOrderedQueue_KeepsThePolicysOrderAsJobsComeAndGo_WithGangsAndGrowthApartFromTheRest()
    {
        var random = new Random(5);
        var queue = new OrderedQueue();
        var all = new List<PendingJob>();
        var sequences = Enumerable.Range(0, 3_000).OrderBy(_ => random.Next()).ToArray(); // submitted in any order
        for (int i = 0; i < 3_000; i++)
        {
            var job = (i % 10) switch
            {
                0 => new PendingJob($"g{i}", random.Next(3), sequences[i], 16, Gang: true, MaxDevices: 32),
                1 => new PendingJob($"r{i}", random.Next(3), sequences[i], 1, Gang: true, MaxDevices: 4, Growth: true),
                _ => new PendingJob($"s{i}", random.Next(3), sequences[i], 1, $"k{i % 7}"),
            };
            queue.Add(job);
            all.Add(job);
            if (i % 500 == 499)
            {
                var leaving = all.Where(_ => random.NextDouble() < 0.2).Select(j => j.JobId).ToHashSet();
                Assert.Equal(leaving.Count, queue.RemoveAll(j => leaving.Contains(j.JobId)));
                all.RemoveAll(j => leaving.Contains(j.JobId));
            }
        }
        var expected = all.OrderBy(j => j, Comparer<PendingJob>.Create(PriorityBestFitPolicy.Compare)).Select(j => j.JobId).ToList();
        Assert.Equal(expected, queue.Select(j => j.JobId).ToList());
        Assert.Equal(expected.Count, queue.Count);
        Assert.All(queue.Gangs, j => Assert.True(j.Gang || j.Growth));
        Assert.All(queue.Others, j => Assert.False(j.Gang || j.Growth));
        Assert.True(queue.HasWaitingGang);
        Assert.Equal(expected, new OrderedQueue(all.OrderBy(_ => random.Next())).Select(j => j.JobId).ToList());
    }
}
