using Orleans.TestingHost;

namespace Orchestrator.Tests;

/// <summary>A job's life cycle through the job, scheduler and node grains: placement, fencing, recovery, fusion.</summary>
public sealed class GrainTests : GrainTestBase
{
    [Fact]
    public async Task Job_GoesThroughItsLifeCycle_AndFreesItsDevice()
    {
        var node = NewId("node");
        var id = NewId("life");
        await using var alive = KeepAlive(node, "cpu:0");

        var submitted = await Submit(id);
        var scheduled = await WaitFor(id, j => j.State == JobState.Scheduled, "scheduled");
        var directive = await WaitForDirective(node, d => d.Desired.Any(a => a.JobId == id), "cpu:0");
        var job = Grains.GetGrain<IJobGrain>(id);
        var epoch = scheduled.Assignment!.AssignmentEpoch;
        var start = await job.Start(epoch, node);
        var ack = await job.ReportProgress(epoch, new JobProgress(10, 100, 0, 1.5, null, 1000, DateTime.UtcNow));
        await job.SaveCheckpoint(epoch, Checkpoint(id, 10));
        await job.Complete(epoch, new JobResult(0.9, 0.3, 100, 1, 2.0, 3000));
        var done = await job.GetInfo();
        var nodeInfo = await Grains.GetGrain<INodeGrain>(node).GetInfo();
        var listed = (await Grains.GetGrain<IJobIndexGrain>(SchedulerKeys.Cluster).List()).Single(j => j.JobId == id);

        Assert.Equal(JobState.Pending, submitted.State);
        Assert.Equal(node, scheduled.Assignment.NodeId);
        Assert.Equal(id, Assert.Single(directive.Desired, a => a.JobId == id).JobId);
        Assert.True(start.Accepted);
        Assert.Empty(start.Checkpoints);
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
        var job = Grains.GetGrain<IJobGrain>(id);

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
        var job = Grains.GetGrain<IJobGrain>(id);
        Assignment firstAssignment;
        await using (KeepAlive(first, "cpu:0"))
        {
            await Submit(id);
            firstAssignment = (await WaitFor(id, j => j.State == JobState.Scheduled && j.Assignment!.NodeId == first, "scheduled on the first node")).Assignment!;
            await job.Start(firstAssignment.AssignmentEpoch, first);
            await job.SaveCheckpoint(firstAssignment.AssignmentEpoch, Checkpoint(id, 40));
        }
        // The first node stops heartbeating; a second one joins.
        await using var alive = KeepAlive(second, "cpu:0");

        var moved = await WaitFor(id, j => j.Assignment?.NodeId == second, "placed on the second node");
        var start = await job.Start(moved.Assignment!.AssignmentEpoch, second);
        var zombie = await job.ReportProgress(firstAssignment.AssignmentEpoch, new JobProgress(50, 100, 0, 1, null, 1, DateTime.UtcNow));
        var firstNode = await Grains.GetGrain<INodeGrain>(first).GetInfo();

        Assert.True(moved.Assignment.AssignmentEpoch > firstAssignment.AssignmentEpoch);
        Assert.Equal(1, moved.Recoveries);
        Assert.Equal(40, start.Checkpoints[0].Step);
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

    [Fact]
    public async Task Cancel_RunningJob_StopsTheWorkerAndFreesTheDevice()
    {
        var node = NewId("node");
        var id = NewId("cancel");
        await using var alive = KeepAlive(node, "cpu:0");
        await Submit(id);
        var epoch = (await WaitFor(id, j => j.State == JobState.Scheduled, "scheduled")).Assignment!.AssignmentEpoch;
        var job = Grains.GetGrain<IJobGrain>(id);
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

        Assert.Equal(JobState.Pending, (await Grains.GetGrain<IJobGrain>(low).GetInfo()).State);
        await Grains.GetGrain<IJobGrain>(low).Cancel("test");
        await Grains.GetGrain<IJobGrain>(high).Cancel("test");
    }

    [Fact]
    public async Task CompatibleJobsQueuedTogether_ShareOneDeviceAsAFusedArray()
    {
        var node = NewId("node");
        var ids = Enumerable.Range(0, 3).Select(i => NewId($"fuse{i}")).ToList();
        var entries = await SubmitDeferred(ids);

        await using var alive = KeepAlive(node, "cpu:0", "cpu:1");
        await Grains.GetGrain<ISchedulerGrain>(SchedulerKeys.Cluster).EnqueueMany(entries);
        var infos = new List<JobInfo>();
        foreach (var id in ids) infos.Add(await WaitFor(id, j => j.State == JobState.Scheduled, "scheduled"));
        var directive = await WaitForDirective(node, d => d.Desired.Count == 3, "cpu:0", "cpu:1");

        Assert.Single(infos.Select(i => i.Assignment!.ArrayId).Distinct());
        Assert.Single(infos.Select(i => i.Assignment!.Device).Distinct());
        Assert.All(infos, i => Assert.Equal(3, i.Assignment!.ArrayWidth));
        Assert.Equal(3, infos.Select(i => i.Assignment!.AssignmentEpoch).Distinct().Count());
        Assert.Equal(3, directive.Desired.Count);
        Assert.Contains(await Grains.GetGrain<IJobGrain>(ids[0]).GetEvents(), e => e.Kind == JobEventKind.Placed && e.ArrayWidth == 3 && e.ArrayId == infos[0].Assignment!.ArrayId);
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
            await Grains.GetGrain<ISchedulerGrain>(SchedulerKeys.Cluster).EnqueueMany(await SubmitDeferred(ids));
            foreach (var (id, k) in ids.Select((id, k) => (id, k)))
            {
                var a = (await WaitFor(id, j => j.State == JobState.Scheduled, "scheduled")).Assignment!;
                before.Add(a);
                await Grains.GetGrain<IJobGrain>(id).Start(a.AssignmentEpoch, first);
                await Grains.GetGrain<IJobGrain>(id).SaveCheckpoint(a.AssignmentEpoch, Checkpoint(id, 100 + k));
            }
        }
        await using var alive = KeepAlive(second, "cpu:0");

        var after = new List<JobInfo>();
        foreach (var id in ids) after.Add(await WaitFor(id, j => j.Assignment?.NodeId == second, "placed on the second node"));
        var starts = new List<StartReply>();
        foreach (var j in after) starts.Add(await Grains.GetGrain<IJobGrain>(j.JobId).Start(j.Assignment!.AssignmentEpoch, second));

        Assert.Single(before.Select(a => a.ArrayId).Distinct());
        Assert.Single(after.Select(j => j.Assignment!.ArrayId).Distinct());
        Assert.All(after, j => Assert.Equal(3, j.Assignment!.ArrayWidth));
        Assert.All(after, j => Assert.Equal(1, j.Recoveries));
        Assert.Equal([100L, 101L, 102L], starts.Select(s => s.Checkpoints[0].Step).ToArray());
    }

    [Fact]
    public async Task InvalidSpec_IsRefusedNamingTheField_AndNothingIsCreated()
    {
        var id = NewId("bad");
        var bad = """{"name":"x","model":{"type":"mlp"},"data":{"dataset":"fashion-mnist"},"train":{"lr":-3}}""";

        var e = await Assert.ThrowsAsync<ArgumentException>(() => Grains.GetGrain<IJobGrain>(id).Submit(new JobSubmission(bad, "test")));

        Assert.Contains("train.lr", e.Message);
        Assert.DoesNotContain(await Grains.GetGrain<IJobIndexGrain>(SchedulerKeys.Cluster).List(), j => j.JobId == id);
        await Assert.ThrowsAsync<KeyNotFoundException>(() => Grains.GetGrain<IJobGrain>(id).GetInfo());
    }

    [Fact]
    public async Task Submit_IsIdempotent_AndRefusesAnotherSpecUnderTheSameId()
    {
        var id = NewId("idem");
        var first = await Submit(id);

        var again = await Submit(id);
        var other = await Assert.ThrowsAsync<JobIdTakenException>(() =>
            Grains.GetGrain<IJobGrain>(id).Submit(new JobSubmission(SpecJson("other"), "test")));

        Assert.Equal(first.SubmittedAt, again.SubmittedAt);
        Assert.Contains("already exists", other.Message);
        Assert.Single(await Grains.GetGrain<IJobIndexGrain>(SchedulerKeys.Cluster).List(), j => j.JobId == id);
        await Grains.GetGrain<IJobGrain>(id).Cancel("test");
    }

    /// <summary>A resubmission of the same spec that drew a taken id got the earlier job back as if it were its own.</summary>
    [Fact]
    public async Task ASubmissionId_TellsARetryFromAnotherSubmissionThatDrewTheSameId()
    {
        var id = NewId("token");
        var spec = SpecJson("token");
        var first = await Grains.GetGrain<IJobGrain>(id).Submit(new JobSubmission(spec, "alice", SubmissionId: "s-1"));

        var retry = await Grains.GetGrain<IJobGrain>(id).Submit(new JobSubmission(spec, "alice", SubmissionId: "s-1"));
        await Assert.ThrowsAsync<JobIdTakenException>(() => Grains.GetGrain<IJobGrain>(id).Submit(new JobSubmission(spec, "alice", SubmissionId: "s-2")));

        Assert.Equal(first.SubmittedAt, retry.SubmittedAt);
        await Grains.GetGrain<IJobGrain>(id).Cancel("test");
    }

    [Fact]
    public void JobIds_OfOneName_DoNotCollide_OverAThousandSubmissions()
    {
        var ids = Enumerable.Range(0, 1000).Select(_ => Orchestrator.Cli.Jobs.JobSubmitter.NewJobId("sweep")).ToList();
        Assert.Equal(ids.Count, ids.Distinct().Count());
        Assert.All(ids, id => Assert.Matches("^sweep-[0-9a-f]{10}$", id));
    }
}

