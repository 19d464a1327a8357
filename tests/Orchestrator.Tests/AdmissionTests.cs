using Orchestrator.Core.Scheduling;

namespace Orchestrator.Tests;

/// <summary>
/// Jobs that could never run: a spec larger than every device (a 156 GB CNN), embedding tables larger than the silos
/// (5.3 TB held in silo memory), a gang larger than the cluster. Each was accepted and waited forever in silence, and
/// the gang blocked every gang behind it. Each cluster here is its own, so its shape is what the test gives it.
/// </summary>
public class AdmissionTests
{
    static readonly SpecValidationOptions NoFiles = new() { CheckFiles = false };

    static string Spec(string yaml) => JobSpecJson.Write(JobSpecParser.Parse(yaml, NoFiles));

    static string Gang(string name, int min, int priority) => Spec(
        $"name: {name}\npriority: {priority}\nkind: data-parallel\nworkers: {{min: {min}, max: {min}}}\nmodel: {{type: mlp}}\ndata: {{dataset: fashion-mnist}}\ntrain: {{steps: 100}}");

    /// <summary>141 M parameters with Adam: about 2.3 GB per device.</summary>
    static readonly string Huge = Spec("name: huge\nmodel: {type: mlp, hidden: [8192, 8192, 8192]}\ndata: {dataset: fashion-mnist}\ntrain: {optimizer: adam}");

    static Task<NodeDirective> Heartbeat(IGrainFactory grains, string node, long memory, params string[] devices) =>
        grains.GetGrain<INodeGrain>(node).Heartbeat(new NodeReport("inc-1", devices, memory, [], "host", 1));

    static async Task<JobInfo> Until(IGrainFactory grains, string id, Func<JobInfo, bool> condition, string what, Func<Task>? meanwhile = null)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (true)
        {
            if (meanwhile is not null) await meanwhile();
            var info = await grains.GetGrain<IJobGrain>(id).GetInfo();
            if (condition(info)) return info;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"job {id} never became {what}; last: {info.State}");
            await Task.Delay(200);
        }
    }

    [Fact]
    public async Task AJobNoDeviceCanHold_IsRefusedAtSubmission_WithTheNumbers_OrUnschedulableIfSubmittedBeforeAnyNode()
    {
        var fixture = new ClusterFixture();
        await fixture.InitializeAsync();
        try
        {
            var grains = fixture.Grains;
            // No node yet: nothing to judge against; it is accepted.
            await grains.GetGrain<IJobGrain>("early").Submit(new JobSubmission(Huge, "test"));
            await Heartbeat(grains, "n1", 2L << 30, "cpu:0", "cpu:1");

            var e = await Assert.ThrowsAsync<ArgumentException>(() => grains.GetGrain<IJobGrain>("late").Submit(new JobSubmission(Huge, "test")));
            Assert.Matches(@"cannot run job huge: it needs about 2\.\d+ GB of memory per device; the largest device has 1\.07 GB \(node n1\)", e.Message);
            await Assert.ThrowsAsync<KeyNotFoundException>(() => grains.GetGrain<IJobGrain>("late").GetInfo());

            var early = await Until(grains, "early", j => j.State == JobState.Unschedulable, "unschedulable", () => Heartbeat(grains, "n1", 2L << 30, "cpu:0", "cpu:1"));
            Assert.Equal(UnschedulableCause.DeviceTooSmall, early.Unschedulable!.Cause);
            Assert.Equal(1L << 30, early.Unschedulable.Available);
            Assert.Contains(await grains.GetGrain<IJobGrain>("early").GetEvents(), ev => ev.Kind == JobEventKind.Unschedulable);
        }
        finally { await fixture.DisposeAsync(); }
    }

    [Fact]
    public async Task EmbeddingTablesLargerThanTheSilos_AreRefusedAtSubmission()
    {
        var fixture = new ClusterFixture();
        await fixture.InitializeAsync();
        try
        {
            // 26 tables of 50 M rows of 1024 floats, with Adagrad state and parity: terabytes.
            var dlrm = Spec("name: tera\nmodel: {type: dlrm, dim: 1024, bottom: [64], top: [64], tableRows: 50000000}\ndata: {dataset: criteo, path: /tmp/x.tsv}\nembedding: {faultTolerance: {k: 2, r: 1}}");
            var e = await Assert.ThrowsAsync<ArgumentException>(() => fixture.Grains.GetGrain<IJobGrain>("tera").Submit(new JobSubmission(dlrm, "test")));
            Assert.Contains("embedding tables need about", e.Message);
            Assert.Contains("per silo", e.Message);
        }
        finally { await fixture.DisposeAsync(); }
    }

    [Fact]
    public async Task AGangLargerThanTheCluster_IsUnschedulable_DoesNotBlockASmallerGang_AndWaitsAgainWhenNodesJoin()
    {
        var fixture = new ClusterFixture();
        await fixture.InitializeAsync();
        try
        {
            var grains = fixture.Grains;
            Task Beat() => Heartbeat(grains, "n1", 2L << 30, "cpu:0", "cpu:1");
            await Beat();
            await grains.GetGrain<IJobGrain>("big").Submit(new JobSubmission(Gang("big", min: 3, priority: 5), "test"));
            var big = await Until(grains, "big", j => j.State == JobState.Unschedulable, "unschedulable", Beat);
            Assert.Equal(new Unschedulable(UnschedulableCause.TooManyDevices, 3, 2, null), big.Unschedulable);

            // A smaller gang of lower priority behind it starts (an unschedulable gang holds nothing back).
            await grains.GetGrain<IJobGrain>("small").Submit(new JobSubmission(Gang("small", min: 2, priority: 1), "test"));
            var small = await Until(grains, "small", j => j.Ranks?.Count == 2, "placed", Beat);
            Assert.Equal(JobState.Scheduled, small.State);

            // A node joins: the big gang fits the cluster again and waits as before (its devices are busy).
            Task BeatBoth() => Task.WhenAll(Beat(), Heartbeat(grains, "n2", 2L << 30, "cpu:0", "cpu:1"));
            big = await Until(grains, "big", j => j.State != JobState.Unschedulable, "schedulable again", BeatBoth);
            Assert.Equal(JobState.Pending, big.State);
            Assert.Null(big.Unschedulable);
            var events = (await grains.GetGrain<IJobGrain>("big").GetEvents()).Select(ev => ev.Kind).ToList();
            Assert.Equal(1, events.Count(k => k == JobEventKind.Unschedulable)); // said once, not every pass
            Assert.Contains(JobEventKind.Schedulable, events);
        }
        finally { await fixture.DisposeAsync(); }
    }

    [Fact]
    public void Admission_JudgesNothingAgainstAnEmptyCluster_AndNeverRefusesGrowth()
    {
        var shape = new ClusterShape(4, 1L << 30, "n1");
        Assert.Null(Admission.Check(new PendingJob("g", 0, 0, 9, Gang: true), ClusterShape.Unknown));
        Assert.Null(Admission.Check(new PendingJob("g", 0, 0, 9, Gang: true, MaxDevices: 9, Growth: true), shape));
        Assert.Equal(UnschedulableCause.TooManyDevices, Admission.Check(new PendingJob("g", 0, 0, 5, Gang: true), shape)!.Cause);
        Assert.Null(Admission.CheckAtSubmission(new PendingJob("g", 0, 0, 5, Gang: true), shape)); // nodes may join
        Assert.Equal(UnschedulableCause.DeviceTooSmall, Admission.CheckAtSubmission(new PendingJob("j", 0, 0, 1, MemoryBytes: 2L << 30), shape)!.Cause);
        Assert.Null(Admission.Check(new PendingJob("j", 0, 0, 1, MemoryBytes: 1L << 30), shape));
        Assert.Equal(new ClusterShape(5, 3L << 30, "b"), ClusterShape.Of([("a", 2, 1L << 30), ("b", 3, 3L << 30), ("c", 0, 9L << 30)]));
    }
}
