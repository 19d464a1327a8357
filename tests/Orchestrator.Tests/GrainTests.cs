using Orchestrator.Core.Specs;
using Orchestrator.Client;
using Orchestrator.Contracts;
using Orchestrator.Grains;
using Orleans.TestingHost;

namespace Orchestrator.Tests;

/// <summary>Two in-process silos with memory storage and fast timings, shared by the grain tests.</summary>
public sealed class ClusterFixture : IAsyncLifetime
{
    public static readonly TimeSpan HeartbeatTimeout = TimeSpan.FromSeconds(2);
    public static readonly TimeSpan RankSilenceLimit = TimeSpan.FromSeconds(1);
    public InProcessTestCluster Cluster { get; }

    public ClusterFixture(bool allowChaos = false)
    {
        var builder = new InProcessTestClusterBuilder(2);
        builder.ConfigureSilo((_, silo) =>
        {
            silo.AddMemoryGrainStorage(StorageNames.State);
            silo.AddMemoryGrainStorage(StorageNames.Checkpoints);
            silo.AddOrchestrator(o =>
            {
                o.NodeHeartbeatTimeout = HeartbeatTimeout;
                o.RankSilenceLimit = RankSilenceLimit;
                o.SchedulerTickPeriod = TimeSpan.FromMilliseconds(200);
                o.AllowChaos = allowChaos;
            });
        });
        Cluster = builder.Build();
    }

    public IGrainFactory Grains => Cluster.Client;
    public async Task InitializeAsync()
    {
        await Cluster.DeployAsync();
        // Until both silos agree on membership, the grain directory can briefly hold two activations of a grain.
        await Cluster.WaitForLivenessToStabilizeAsync();
    }
    public async Task DisposeAsync() => await Cluster.DisposeAsync();
}

/// <summary>Each test gets its own cluster, so that nodes and queues of one test never serve another.</summary>
public class GrainTests : IAsyncLifetime
{
    readonly ClusterFixture _fixture = new();
    IGrainFactory _grains = null!;

    public async Task InitializeAsync()
    {
        await _fixture.InitializeAsync();
        _grains = _fixture.Grains;
    }

    public Task DisposeAsync() => _fixture.DisposeAsync();

    static string SpecJson(string name, int priority = 0, string fusion = "auto") => JobSpecJson.Write(JobSpecParser.Parse(
        $"name: {name}\npriority: {priority}\nfusion: {fusion}\nmodel: {{type: mlp}}\ndata: {{dataset: fashion-mnist}}\ntrain: {{steps: 100}}",
        new SpecValidationOptions { CheckFiles = false }));

    static string NewId(string prefix) => $"{prefix}-{Guid.NewGuid():n}"[..20];

    async Task<JobInfo> Submit(string id, int priority = 0, string fusion = "auto", bool defer = false) =>
        await _grains.GetGrain<IJobGrain>(id).Submit(new JobSubmission(SpecJson("j", priority, fusion), "test", defer));

    /// <summary>Submits jobs without queueing them (as the CLI does for a sweep) and returns their queue entries.</summary>
    async Task<List<QueuedJob>> SubmitDeferred(IEnumerable<string> ids)
    {
        var entries = new List<QueuedJob>();
        foreach (var id in ids)
        {
            await Submit(id, defer: true);
            entries.Add((await _grains.GetGrain<IJobGrain>(id).GetQueueEntry())!);
        }
        return entries;
    }

    Task<NodeDirective> Heartbeat(string node, params string[] devices) =>
        _grains.GetGrain<INodeGrain>(node).Heartbeat(new NodeReport("inc-1", devices, 1 << 30, [], "host", 1));

    /// <summary>Keeps a node alive (heartbeats every 300 ms) until disposed.</summary>
    IAsyncDisposable KeepAlive(string node, params string[] devices)
    {
        var cts = new CancellationTokenSource();
        var loop = Task.Run(async () =>
        {
            while (!cts.IsCancellationRequested)
            {
                await Heartbeat(node, devices);
                try { await Task.Delay(300, cts.Token); } catch (OperationCanceledException) { }
            }
        });
        return new Stopper(cts, loop);
    }

    sealed class Stopper(CancellationTokenSource cts, Task loop) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            cts.Cancel();
            await loop;
        }
    }

    /// <summary>Heartbeats until the node's desired state satisfies the condition (it follows the job's by a moment).</summary>
    async Task<NodeDirective> WaitForDirective(string node, Func<NodeDirective, bool> condition, params string[] devices)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        NodeDirective directive;
        do
        {
            directive = await Heartbeat(node, devices);
            if (condition(directive)) return directive;
            await Task.Delay(50);
        } while (DateTime.UtcNow < deadline);
        return directive;
    }

    async Task<JobInfo> WaitFor(string id, Func<JobInfo, bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        JobInfo info;
        do
        {
            info = await _grains.GetGrain<IJobGrain>(id).GetInfo();
            if (condition(info)) return info;
            await Task.Delay(50);
        } while (DateTime.UtcNow < deadline);
        // What the scheduler and the job saw, so that a failure says why.
        var scheduler = await _grains.GetGrain<ISchedulerGrain>(SchedulerKeys.Cluster).GetInfo();
        var nodes = await Task.WhenAll(scheduler.Nodes.Select(n => _grains.GetGrain<INodeGrain>(n).GetInfo()));
        var events = await _grains.GetGrain<IJobGrain>(id).GetEvents();
        throw new TimeoutException($"job {id} never became {what}; last state {info.State}. Scheduler queue: {string.Join(", ", scheduler.Queue.Select(q => $"{q.JobId} p{q.Priority}"))}; " +
            $"nodes: {string.Join(", ", nodes.Select(n => $"{n.NodeId} {n.Health} heartbeat {n.LastHeartbeat:HH:mm:ss.fff} assignments {n.Assignments.Count}"))}; placements made {scheduler.PlacementsMade}; " +
            $"now {DateTime.UtcNow:HH:mm:ss.fff}; job events: {string.Join(" | ", events.Select(e => $"{e.At:HH:mm:ss.fff} {e.Source}: {e.Message}"))}");
    }

    [Fact]
    public async Task Job_GoesThroughItsLifeCycle_AndFreesItsDevice()
    {
        var node = NewId("node");
        var id = NewId("life");
        await using var alive = KeepAlive(node, "cpu:0");

        var submitted = await Submit(id);
        var scheduled = await WaitFor(id, j => j.State == JobState.Scheduled, "scheduled");
        var directive = await WaitForDirective(node, d => d.Desired.Any(a => a.JobId == id), "cpu:0");
        var job = _grains.GetGrain<IJobGrain>(id);
        var epoch = scheduled.Assignment!.AssignmentEpoch;
        var start = await job.Start(epoch, node);
        var ack = await job.ReportProgress(epoch, new JobProgress(10, 100, 0, 1.5, null, 1000, DateTime.UtcNow));
        await job.SaveCheckpoint(epoch, new JobCheckpoint(10, [1, 2, 3], DateTime.UtcNow));
        await job.Complete(epoch, new JobResult(0.9, 0.3, 100, 1, 2.0, 3000));
        var done = await job.GetInfo();
        var nodeInfo = await _grains.GetGrain<INodeGrain>(node).GetInfo();
        var listed = (await _grains.GetGrain<IJobIndexGrain>(SchedulerKeys.Cluster).List()).Single(j => j.JobId == id);

        Assert.Equal(JobState.Pending, submitted.State);
        Assert.Equal(node, scheduled.Assignment.NodeId);
        Assert.Equal(id, Assert.Single(directive.Desired, a => a.JobId == id).JobId);
        Assert.True(start.Accepted);
        Assert.Null(start.Checkpoint);
        Assert.Equal(SpecJson("j"), start.SpecJson);
        Assert.True(ack.Continue);
        Assert.Equal(JobState.Succeeded, done.State);
        Assert.Equal(0.9, done.Result!.TestAccuracy);
        Assert.Equal(10, done.CheckpointStep);
        Assert.DoesNotContain(nodeInfo.Assignments, a => a.JobId == id);
        Assert.Equal(JobState.Succeeded, listed.State);
        var events = await job.GetEvents();
        Assert.Equal([JobEventKind.Submitted, JobEventKind.Placed, JobEventKind.Started, JobEventKind.Succeeded], events.Select(e => e.Kind));
        var placed = events.Single(e => e.Kind == JobEventKind.Placed);
        Assert.Equal((node, "cpu:0", epoch, "scheduler"), (placed.Node, placed.Device, placed.AssignmentEpoch, placed.Source));
        Assert.Equal(0.9, events.Single(e => e.Kind == JobEventKind.Succeeded).Result!.TestAccuracy);
        Assert.Equal("test", events[0].Source);
        Assert.Equal("mlp 256-128", events[0].Summary!.Model);
    }

    [Fact]
    public async Task StaleEpoch_IsRefusedEverywhere()
    {
        var node = NewId("node");
        var id = NewId("stale");
        await using var alive = KeepAlive(node, "cpu:0");
        await Submit(id);
        var epoch = (await WaitFor(id, j => j.State == JobState.Scheduled, "scheduled")).Assignment!.AssignmentEpoch;
        var job = _grains.GetGrain<IJobGrain>(id);

        var start = await job.Start(epoch - 1, node);
        var progress = await job.ReportProgress(epoch + 1, new JobProgress(1, 100, 0, 1, null, 1, DateTime.UtcNow));
        var complete = await job.Complete(epoch - 1, new JobResult(1, 0, 1, 1, 1, 1));

        Assert.False(start.Accepted);
        Assert.Equal(StopCause.StaleAssignment, start.Refused!.Cause);
        Assert.Equal(StopCause.StaleAssignment, progress.Stop!.Cause);
        Assert.False(progress.Continue);
        Assert.False(complete.Continue);
        Assert.Equal(JobState.Scheduled, (await job.GetInfo()).State);
    }

    [Fact]
    public async Task DeadNode_JobIsRescheduledElsewhere_ResumesFromCheckpoint_AndTheZombieIsFenced()
    {
        var first = NewId("node");
        var second = NewId("node");
        var id = NewId("moved");
        var job = _grains.GetGrain<IJobGrain>(id);
        Assignment firstAssignment;
        await using (KeepAlive(first, "cpu:0"))
        {
            await Submit(id);
            firstAssignment = (await WaitFor(id, j => j.State == JobState.Scheduled && j.Assignment!.NodeId == first, "scheduled on the first node")).Assignment!;
            await job.Start(firstAssignment.AssignmentEpoch, first);
            await job.SaveCheckpoint(firstAssignment.AssignmentEpoch, new JobCheckpoint(40, [9, 9], DateTime.UtcNow));
        }
        // The first node stops heartbeating; a second one joins.
        await using var alive = KeepAlive(second, "cpu:0");

        var moved = await WaitFor(id, j => j.Assignment?.NodeId == second, "placed on the second node");
        var start = await job.Start(moved.Assignment!.AssignmentEpoch, second);
        var zombie = await job.ReportProgress(firstAssignment.AssignmentEpoch, new JobProgress(50, 100, 0, 1, null, 1, DateTime.UtcNow));
        var firstNode = await _grains.GetGrain<INodeGrain>(first).GetInfo();

        Assert.True(moved.Assignment.AssignmentEpoch > firstAssignment.AssignmentEpoch);
        Assert.Equal(1, moved.Recoveries);
        Assert.Equal(40, start.Checkpoint!.Step);
        Assert.False(zombie.Continue);
        Assert.Equal(NodeHealth.Dead, firstNode.Health);
        Assert.Empty(firstNode.Assignments);
        var nodeLost = Assert.Single(await job.GetEvents(), e => e.Kind == JobEventKind.NodeLost);
        Assert.Equal((first, 40L, ClusterFixture.HeartbeatTimeout.TotalSeconds), (nodeLost.Node, nodeLost.ResumeStep, nodeLost.Seconds));
        var lost = await WaitForIncident(i => i.Kind == IncidentKind.NodeLost && i.NodeId == first);
        Assert.Equal(FailureCategory.NodeLost, lost.Category);
        Assert.Equal([id], lost.Jobs);
        Assert.True(lost.DetectionSeconds >= ClusterFixture.HeartbeatTimeout.TotalSeconds, $"detected after {lost.DetectionSeconds} s");

        await job.Fail(moved.Assignment.AssignmentEpoch, new JobFailure(FailureCause.NonFiniteLoss, "loss NaN; lower train.lr", 3));
        var failed = await WaitForIncident(i => i.Kind == IncidentKind.JobFailed && i.Jobs.Contains(id));
        Assert.Equal((second, FailureCategory.UserError, FailureCause.NonFiniteLoss, 3L), (failed.NodeId, failed.Category, failed.Cause, failed.Step));
        var info = await job.GetInfo();
        Assert.Equal((JobState.Failed, FailureCause.NonFiniteLoss, FailureCategory.UserError), (info.State, info.Failure!.Cause, info.Failure.Category));
    }

    /// <summary>Incidents are recorded one-way: waits until one matching is in the log.</summary>
    async Task<Incident> WaitForIncident(Func<Incident, bool> match)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            if ((await _grains.GetGrain<IIncidentLogGrain>(SchedulerKeys.Cluster).List(1000)).FirstOrDefault(match) is { } found) return found;
            if (DateTime.UtcNow > deadline) throw new TimeoutException("the incident was not recorded");
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task Cancel_RunningJob_StopsTheWorkerAndFreesTheDevice()
    {
        var node = NewId("node");
        var id = NewId("cancel");
        await using var alive = KeepAlive(node, "cpu:0");
        await Submit(id);
        var epoch = (await WaitFor(id, j => j.State == JobState.Scheduled, "scheduled")).Assignment!.AssignmentEpoch;
        var job = _grains.GetGrain<IJobGrain>(id);
        await job.Start(epoch, node);

        var cancelled = await job.Cancel("alice");
        var ack = await job.ReportProgress(epoch, new JobProgress(5, 100, 0, 1, null, 1, DateTime.UtcNow));
        var directive = await Heartbeat(node, "cpu:0");

        var history = string.Join("\n", (await job.GetEvents()).Select(e => $"{e.At:HH:mm:ss.fff} {e.Source}: {e.Message}"));
        Assert.Equal(JobState.Cancelled, cancelled.State);
        Assert.False(ack.Continue);
        Assert.Equal(StopCause.Cancelled, ack.Stop!.Cause);
        Assert.True(directive.Desired.All(a => a.JobId != id), history);
        Assert.Contains(await job.GetEvents(), e => e.Source == "alice" && e.Kind == JobEventKind.Cancelled);
    }

    [Fact]
    public async Task HigherPriority_GetsTheOnlyDeviceFirst()
    {
        var node = NewId("node");
        var low = NewId("low");
        var high = NewId("high");
        await Submit(low, priority: 0, fusion: "never");
        await Submit(high, priority: 10, fusion: "never");

        await using var alive = KeepAlive(node, "cpu:0");
        await WaitFor(high, j => j.State == JobState.Scheduled, "scheduled");

        Assert.Equal(JobState.Pending, (await _grains.GetGrain<IJobGrain>(low).GetInfo()).State);
        await _grains.GetGrain<IJobGrain>(low).Cancel("test");
        await _grains.GetGrain<IJobGrain>(high).Cancel("test");
    }

    [Fact]
    public async Task CompatibleJobsQueuedTogether_ShareOneDeviceAsAFusedArray()
    {
        var node = NewId("node");
        var ids = Enumerable.Range(0, 3).Select(i => NewId($"fuse{i}")).ToList();
        var entries = await SubmitDeferred(ids);

        await using var alive = KeepAlive(node, "cpu:0", "cpu:1");
        await _grains.GetGrain<ISchedulerGrain>(SchedulerKeys.Cluster).EnqueueMany(entries);
        var infos = new List<JobInfo>();
        foreach (var id in ids) infos.Add(await WaitFor(id, j => j.State == JobState.Scheduled, "scheduled"));
        var directive = await WaitForDirective(node, d => d.Desired.Count == 3, "cpu:0", "cpu:1");

        Assert.Single(infos.Select(i => i.Assignment!.ArrayId).Distinct());
        Assert.Single(infos.Select(i => i.Assignment!.Device).Distinct());
        Assert.All(infos, i => Assert.Equal(3, i.Assignment!.ArrayWidth));
        Assert.Equal(3, infos.Select(i => i.Assignment!.AssignmentEpoch).Distinct().Count());
        Assert.Equal(3, directive.Desired.Count);
        Assert.Contains(await _grains.GetGrain<IJobGrain>(ids[0]).GetEvents(), e => e.Kind == JobEventKind.Placed && e.ArrayWidth == 3 && e.ArrayId == infos[0].Assignment!.ArrayId);
    }

    [Fact]
    public async Task FusedArrayOnADeadNode_IsRequeued_AndFusedAgainOnAnotherNode_FromEachMembersCheckpoint()
    {
        var first = NewId("node");
        var second = NewId("node");
        var ids = Enumerable.Range(0, 3).Select(i => NewId($"arr{i}")).ToList();
        var before = new List<Assignment>();
        await using (KeepAlive(first, "cpu:0"))
        {
            await _grains.GetGrain<ISchedulerGrain>(SchedulerKeys.Cluster).EnqueueMany(await SubmitDeferred(ids));
            foreach (var (id, k) in ids.Select((id, k) => (id, k)))
            {
                var a = (await WaitFor(id, j => j.State == JobState.Scheduled, "scheduled")).Assignment!;
                before.Add(a);
                await _grains.GetGrain<IJobGrain>(id).Start(a.AssignmentEpoch, first);
                await _grains.GetGrain<IJobGrain>(id).SaveCheckpoint(a.AssignmentEpoch, new JobCheckpoint(100 + k, [(byte)k], DateTime.UtcNow));
            }
        }
        await using var alive = KeepAlive(second, "cpu:0");

        var after = new List<JobInfo>();
        foreach (var id in ids) after.Add(await WaitFor(id, j => j.Assignment?.NodeId == second, "placed on the second node"));
        var starts = new List<StartReply>();
        foreach (var j in after) starts.Add(await _grains.GetGrain<IJobGrain>(j.JobId).Start(j.Assignment!.AssignmentEpoch, second));

        Assert.Single(before.Select(a => a.ArrayId).Distinct());
        Assert.Single(after.Select(j => j.Assignment!.ArrayId).Distinct());
        Assert.All(after, j => Assert.Equal(3, j.Assignment!.ArrayWidth));
        Assert.All(after, j => Assert.Equal(1, j.Recoveries));
        Assert.Equal([100L, 101L, 102L], starts.Select(s => s.Checkpoint!.Step).ToArray());
    }

    [Fact]
    public async Task InvalidSpec_IsRefusedNamingTheField_AndNothingIsCreated()
    {
        var id = NewId("bad");
        var bad = """{"name":"x","model":{"type":"mlp"},"data":{"dataset":"fashion-mnist"},"train":{"lr":-3}}""";

        var e = await Assert.ThrowsAsync<ArgumentException>(() => _grains.GetGrain<IJobGrain>(id).Submit(new JobSubmission(bad, "test")));

        Assert.Contains("train.lr", e.Message);
        Assert.DoesNotContain(await _grains.GetGrain<IJobIndexGrain>(SchedulerKeys.Cluster).List(), j => j.JobId == id);
        await Assert.ThrowsAsync<KeyNotFoundException>(() => _grains.GetGrain<IJobGrain>(id).GetInfo());
    }

    static string DataParallelSpec(int min, int max, int priority = 0) => JobSpecJson.Write(JobSpecParser.Parse(
        $"name: dp\npriority: {priority}\nkind: data-parallel\nworkers: {{min: {min}, max: {max}}}\nmodel: {{type: mlp}}\ndata: {{dataset: fashion-mnist}}\ntrain: {{steps: 100}}",
        new SpecValidationOptions { CheckFiles = false }));

    /// <summary>Every placed rank joins with an endpoint; returns the view the last one got.</summary>
    async Task<GangView> JoinAll(string id, IEnumerable<Assignment> ranks)
    {
        GangView view = null!;
        foreach (var r in ranks)
        {
            var reply = await _grains.GetGrain<IJobGrain>(id).JoinGang(r.AssignmentEpoch, r.NodeId, $"127.0.0.1:{20000 + r.AssignmentEpoch}");
            Assert.True(reply.Accepted, reply.Refused?.Message);
            view = reply.Gang!;
        }
        return view;
    }

    [Fact]
    public async Task DataParallelJob_StartsOnlyWithItsWholeGang_AndFormsOnceEveryRankJoined()
    {
        var (n1, n2) = (NewId("n1"), NewId("n2"));
        var id = NewId("dp");
        await using var one = KeepAlive(n1, "cpu:0");
        await Heartbeat(n1, "cpu:0");
        await _grains.GetGrain<IJobGrain>(id).Submit(new JobSubmission(DataParallelSpec(min: 2, max: 3), "test"));
        await Task.Delay(1000);
        var waiting = await _grains.GetGrain<IJobGrain>(id).GetInfo();
        var onOne = await Heartbeat(n1, "cpu:0");

        await using var two = KeepAlive(n2, "cpu:0", "cpu:1");
        var placed = await WaitFor(id, j => j.Ranks?.Count == 3, "placed on 3 devices");
        var beforeLast = await JoinAll(id, placed.Ranks!.Take(2));
        var formed = await JoinAll(id, placed.Ranks!.Skip(2));
        var info = await _grains.GetGrain<IJobGrain>(id).GetInfo();

        Assert.Equal(JobState.Pending, waiting.State); // one free device: no partial gang is held
        Assert.Empty(onOne.Desired);
        Assert.Equal(3, placed.Ranks!.Select(r => (r.NodeId, r.Device)).Distinct().Count());
        Assert.All(placed.Ranks!, r => Assert.True(r.Gang));
        Assert.False(beforeLast.CanTrain);
        Assert.True(formed.CanTrain);
        Assert.Equal(placed.Ranks!.Select(r => r.AssignmentEpoch), formed.Ranks);
        Assert.Equal(placed.Ranks!.Select(r => $"127.0.0.1:{20000 + r.AssignmentEpoch}"), formed.Endpoints);
        Assert.Equal(JobState.Running, info.State);
    }

    [Fact]
    public async Task AReportedRank_IsReFormedWhileItsProcessLives_AndRemovedOnceItsNodeIsSilent_WhichItsNodeLostIncidentNames()
    {
        var (a, b) = (NewId("a"), NewId("b"));
        var id = NewId("dp");
        var job = _grains.GetGrain<IJobGrain>(id);
        var alive = new Dictionary<string, IAsyncDisposable> { [a] = KeepAlive(a, "cpu:0"), [b] = KeepAlive(b, "cpu:0") };
        await Heartbeat(b, "cpu:0");
        await job.Submit(new JobSubmission(DataParallelSpec(min: 1, max: 2), "test"));
        var placed = await WaitFor(id, j => j.Ranks?.Count == 2, "placed on 2 devices");
        var formed = await JoinAll(id, placed.Ranks!);
        var (first, second) = (formed.Ranks[0], formed.Ranks[1]);

        var atOnce = await job.ReportPeerFailure(first, formed.MembershipEpoch, second, step: 7, PeerFailure.ConnectionLost, "connection closed");
        await Task.Delay(700); // the suspect's node heartbeats meanwhile: its process is alive
        var reFormed = await job.ReportPeerFailure(first, formed.MembershipEpoch, second, step: 7, PeerFailure.ConnectionLost, "connection closed");
        await alive[placed.Ranks!.Single(r => r.AssignmentEpoch == second).NodeId].DisposeAsync();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        GangView afterSilence;
        do
        {
            afterSilence = await job.ReportPeerFailure(first, reFormed.MembershipEpoch, second, step: 7, PeerFailure.Silent, "nothing within 3 s");
            await Task.Delay(200);
        } while (afterSilence.MembershipEpoch == reFormed.MembershipEpoch && clock.Elapsed < TimeSpan.FromSeconds(10));
        var removedView = await job.SyncGang(second, 7);
        var events = await job.GetEvents();

        Assert.Equal(formed.MembershipEpoch, atOnce.MembershipEpoch); // no verdict yet
        Assert.Equal(formed.MembershipEpoch + 1, reFormed.MembershipEpoch);
        Assert.Equal(formed.Ranks, reFormed.Ranks);
        Assert.Equal([first], afterSilence.Ranks);
        Assert.InRange(clock.Elapsed, ClusterFixture.RankSilenceLimit * 0.5, ClusterFixture.HeartbeatTimeout);
        Assert.NotNull(removedView.Stop);
        var suspectRank = placed.Ranks!.Single(r => r.AssignmentEpoch == second);
        var reForm = Assert.Single(events, e => e.Kind == JobEventKind.MembershipReFormed);
        Assert.Equal((7L, reFormed.MembershipEpoch, 1, suspectRank.NodeId, PeerFailure.ConnectionLost), (reForm.Step, reForm.MembershipEpoch, reForm.Rank, reForm.Node, reForm.Peer));
        var removed = Assert.Single(events, e => e.Kind == JobEventKind.RankRemoved);
        Assert.Equal((RankRemoval.FoundDead, 7L, suspectRank.NodeId, 1, afterSilence.MembershipEpoch), (removed.Removal, removed.Step, removed.Node, removed.Ranks, removed.MembershipEpoch));
        Assert.True(removed.Seconds >= ClusterFixture.RankSilenceLimit.TotalSeconds, $"its node silent for {removed.Seconds} s");
        Assert.True(afterSilence.CanTrain); // min 1: the survivor goes on

        // The silent node is then declared lost: its incident names the job whose rank its peers removed first.
        var suspectNode = placed.Ranks!.Single(r => r.AssignmentEpoch == second).NodeId;
        var lost = await WaitForIncident(i => i.Kind == IncidentKind.NodeLost && i.NodeId == suspectNode);
        Assert.Equal([id], lost.Jobs);
        Assert.Equal([id], lost.RemovedByPeers);
        foreach (var keeper in alive.Values) await keeper.DisposeAsync();
    }

    [Fact]
    public async Task AJoiner_IsAdmittedAtTheNextStepBoundary_AndTheStepNeverGoesBack()
    {
        var node = NewId("n");
        var id = NewId("dp");
        var job = _grains.GetGrain<IJobGrain>(id);
        await using var alive = KeepAlive(node, "cpu:0", "cpu:1");
        await Heartbeat(node, "cpu:0", "cpu:1");
        await job.Submit(new JobSubmission(DataParallelSpec(min: 2, max: 3), "test"));
        var placed = await WaitFor(id, j => j.Ranks?.Count == 2, "placed on 2 devices");
        var formed = await JoinAll(id, placed.Ranks!);
        var rank0 = formed.Ranks[0];

        await using var more = KeepAlive(NewId("m"), "cpu:0");
        await job.SyncGang(rank0, 10); // a step boundary: the job asks to grow
        var grown = await WaitFor(id, j => j.Ranks?.Count == 3, "given a third device");
        var joiner = grown.Ranks!.Single(r => !formed.Ranks.Contains(r.AssignmentEpoch));
        var waitingView = (await job.JoinGang(joiner.AssignmentEpoch, joiner.NodeId, "127.0.0.1:29999")).Gang!;
        var sameBoundary = await job.SyncGang(rank0, 10);
        var nextBoundary = await job.SyncGang(rank0, 20);
        var older = await job.SyncGang(formed.Ranks[1], 15);

        Assert.Equal(-1, waitingView.RankOf(joiner.AssignmentEpoch));
        Assert.Equal(formed.MembershipEpoch, sameBoundary.MembershipEpoch);
        Assert.Equal(formed.MembershipEpoch + 1, nextBoundary.MembershipEpoch);
        Assert.Equal(2, nextBoundary.RankOf(joiner.AssignmentEpoch)); // joins last; rank 0 is the broadcast source
        Assert.Equal(20, nextBoundary.Step);
        Assert.Equal(20, older.Step);
    }

    [Fact]
    public async Task AGangOfHigherPriority_PreemptsRunningJobs_WhichCheckpointAndGoBackToTheQueue()
    {
        var node = NewId("n");
        await using var alive = KeepAlive(node, "cpu:0", "cpu:1");
        await Heartbeat(node, "cpu:0", "cpu:1");
        var singles = new[] { NewId("s1"), NewId("s2") };
        foreach (var id in singles) await Submit(id, priority: 0, fusion: "never");
        var running = new List<JobInfo>();
        foreach (var id in singles)
        {
            var placed = await WaitFor(id, j => j.State == JobState.Scheduled, "scheduled");
            Assert.True((await _grains.GetGrain<IJobGrain>(id).Start(placed.Assignment!.AssignmentEpoch, node)).Accepted);
            running.Add(placed);
        }

        var gang = NewId("gang");
        await _grains.GetGrain<IJobGrain>(gang).Submit(new JobSubmission(DataParallelSpec(min: 2, max: 2, priority: 5), "test"));
        await Task.Delay(1000);
        var acks = new List<WorkAck>();
        foreach (var j in running)
            acks.Add(await _grains.GetGrain<IJobGrain>(j.JobId).ReportProgress(j.Assignment!.AssignmentEpoch, new JobProgress(42, 100, 0, 0.5, null, 1, DateTime.UtcNow)));
        var gangBeforeYield = await _grains.GetGrain<IJobGrain>(gang).GetInfo();
        foreach (var j in running)
            await _grains.GetGrain<IJobGrain>(j.JobId).Yield(j.Assignment!.AssignmentEpoch, new JobCheckpoint(42, [1, 2, 3], DateTime.UtcNow));
        var placedGang = await WaitFor(gang, j => j.Ranks?.Count == 2, "placed after the preemption");
        var requeued = await Task.WhenAll(singles.Select(id => _grains.GetGrain<IJobGrain>(id).GetInfo()));
        var events = await _grains.GetGrain<IJobGrain>(singles[0]).GetEvents();

        Assert.All(acks, a => Assert.Equal((StopCause.Preempted, true), (a.Stop?.Cause, a.Yield)));
        Assert.Equal(JobState.Pending, gangBeforeYield.State); // the devices are not taken from under running jobs
        Assert.Equal(["cpu:0", "cpu:1"], placedGang.Ranks!.Select(r => r.Device).Order());
        Assert.All(requeued, j => Assert.Equal(JobState.Pending, j.State));
        Assert.All(requeued, j => Assert.Equal(42, j.CheckpointStep));
        Assert.Contains(events, e => e.Kind == JobEventKind.PreemptionRequested && e.OtherJob == gang);
        Assert.Contains(events, e => e.Kind == JobEventKind.Preempted && e.Step == 42 && e.Source == node);
        var preempted = await WaitForIncident(i => i.Kind == IncidentKind.Preempted && i.Jobs.Contains(singles[0]));
        Assert.Equal((FailureCategory.Preemption, 42L), (preempted.Category, preempted.Step));
    }

    [Fact]
    public async Task Submit_IsIdempotent_AndRefusesAnotherSpecUnderTheSameId()
    {
        var id = NewId("idem");
        var first = await Submit(id);

        var again = await Submit(id);
        var other = await Assert.ThrowsAsync<ArgumentException>(() =>
            _grains.GetGrain<IJobGrain>(id).Submit(new JobSubmission(SpecJson("other"), "test")));

        Assert.Equal(first.SubmittedAt, again.SubmittedAt);
        Assert.Contains("already exists", other.Message);
        Assert.Single(await _grains.GetGrain<IJobIndexGrain>(SchedulerKeys.Cluster).List(), j => j.JobId == id);
        await _grains.GetGrain<IJobGrain>(id).Cancel("test");
    }
}
