using Orleans.TestingHost;

namespace Orchestrator.Tests;

/// <summary>The job grain as the rendezvous of a data-parallel job: whole gangs, forming, failure verdicts, joiners, preemption.</summary>
public sealed class GangGrainTests : GrainTestBase
{
    static string DataParallelSpec(int min, int max, int priority = 0) => JobSpecJson.Write(JobSpecParser.Parse(
        $"name: dp\npriority: {priority}\nkind: data-parallel\nworkers: {{min: {min}, max: {max}}}\nmodel: {{type: mlp}}\ndata: {{dataset: fashion-mnist}}\ntrain: {{steps: 100}}",
        new SpecValidationOptions { CheckFiles = false }));

    /// <summary>Every placed rank joins with an endpoint; returns the view the last one got.</summary>
    async Task<GangView> JoinAll(string id, IEnumerable<Assignment> ranks)
    {
        GangView view = null!;
        foreach (var r in ranks)
        {
            var reply = await Grains.GetGrain<IJobGrain>(id).JoinGang(r.AssignmentEpoch, r.NodeId, $"127.0.0.1:{20000 + r.AssignmentEpoch}");
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
        await Grains.GetGrain<IJobGrain>(id).Submit(new JobSubmission(DataParallelSpec(min: 2, max: 3), "test"));
        await Task.Delay(1000);
        var waiting = await Grains.GetGrain<IJobGrain>(id).GetInfo();
        var onOne = await Heartbeat(n1, "cpu:0");

        await using var two = KeepAlive(n2, "cpu:0", "cpu:1");
        var placed = await WaitFor(id, j => j.Ranks?.Count == 3, "placed on 3 devices");
        var beforeLast = await JoinAll(id, placed.Ranks!.Take(2));
        var formed = await JoinAll(id, placed.Ranks!.Skip(2));
        var info = await Grains.GetGrain<IJobGrain>(id).GetInfo();

        // One device: no partial gang is held (and with one device in the whole cluster the gang is unschedulable).
        Assert.Contains(waiting.State, new[] { JobState.Pending, JobState.Unschedulable });
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
        var job = Grains.GetGrain<IJobGrain>(id);
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
        var job = Grains.GetGrain<IJobGrain>(id);
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
            Assert.True((await Grains.GetGrain<IJobGrain>(id).Start(placed.Assignment!.AssignmentEpoch, node)).Accepted);
            running.Add(placed);
        }

        var gang = NewId("gang");
        await Grains.GetGrain<IJobGrain>(gang).Submit(new JobSubmission(DataParallelSpec(min: 2, max: 2, priority: 5), "test"));
        await Task.Delay(1000);
        var acks = new List<WorkAck>();
        foreach (var j in running)
            acks.Add(await Grains.GetGrain<IJobGrain>(j.JobId).ReportProgress(j.Assignment!.AssignmentEpoch, new JobProgress(42, 100, 0, 0.5, null, 1, DateTime.UtcNow)));
        var gangBeforeYield = await Grains.GetGrain<IJobGrain>(gang).GetInfo();
        foreach (var j in running)
            await Grains.GetGrain<IJobGrain>(j.JobId).Yield(j.Assignment!.AssignmentEpoch, Checkpoint(j.JobId, 42));
        var placedGang = await WaitFor(gang, j => j.Ranks?.Count == 2, "placed after the preemption");
        var requeued = await Task.WhenAll(singles.Select(id => Grains.GetGrain<IJobGrain>(id).GetInfo()));
        var events = await Grains.GetGrain<IJobGrain>(singles[0]).GetEvents();

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

    /// <summary>Single and fused assignments carried priority 0, so a gang of priority 5 preempted jobs of priority 10
    /// (which then outranked it in the queue and were placed again at once: a livelock).</summary>
    [Fact]
    public async Task AGang_NeverPreemptsJobsOfHigherPriority()
    {
        var node = NewId("n");
        await using var alive = KeepAlive(node, "cpu:0", "cpu:1");
        await Heartbeat(node, "cpu:0", "cpu:1");
        var singles = new[] { NewId("hi1"), NewId("hi2") };
        foreach (var id in singles) await Submit(id, priority: 10, fusion: "never");
        var running = new List<JobInfo>();
        foreach (var id in singles)
        {
            var placed = await WaitFor(id, j => j.State == JobState.Scheduled, "scheduled");
            Assert.Equal(10, placed.Assignment!.Priority);
            await Grains.GetGrain<IJobGrain>(id).Start(placed.Assignment.AssignmentEpoch, node);
            running.Add(placed);
        }

        var gang = NewId("gang");
        await Grains.GetGrain<IJobGrain>(gang).Submit(new JobSubmission(DataParallelSpec(min: 2, max: 2, priority: 5), "test"));
        await Task.Delay(1500); // several scheduler passes

        foreach (var j in running)
        {
            var ack = await Grains.GetGrain<IJobGrain>(j.JobId).ReportProgress(j.Assignment!.AssignmentEpoch, new JobProgress(42, 100, 0, 0.5, null, 1, DateTime.UtcNow));
            Assert.True(ack.Continue);
            Assert.DoesNotContain(await Grains.GetGrain<IJobGrain>(j.JobId).GetEvents(), e => e.Kind == JobEventKind.PreemptionRequested);
        }
        Assert.Equal(JobState.Pending, (await Grains.GetGrain<IJobGrain>(gang).GetInfo()).State);
        foreach (var id in singles.Append(gang)) await Grains.GetGrain<IJobGrain>(id).Cancel("test");
    }
}
