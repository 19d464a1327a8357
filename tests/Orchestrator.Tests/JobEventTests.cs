namespace Orchestrator.Tests;

/// <summary>Events, incidents and failures are rendered from their fields, for every kind.</summary>
public sealed class JobEventTests
{
    static readonly Assignment Rank = new("job-1", "w3", "cpu:1", 17, DateTime.UtcNow, "array-17", 4);

    /// <summary>One event of every kind, as the code that records it makes it.</summary>
    static IEnumerable<JobEvent> OneOfEach() =>
    [
        JobEvent.Submitted("alice", new JobSummary("mlp 256-128", "sgd", 0.05, 2, 2, 4, "adasum")),
        JobEvent.EmbeddingPlanned(new ShardConfig("job-1", 3, 1, 6, 16, 26 * 1000, 1, 0.05f), liveSilos: 3),
        JobEvent.Placed(Rank, resumeStep: 300),
        JobEvent.PlacementNotTaken("w3", "cpu:1"),
        JobEvent.NodeLost("w3", TimeSpan.FromSeconds(5), 300),
        JobEvent.Started("w3", 300),
        JobEvent.TrainingEpochCompleted("w3", new JobProgress(937, 2811, 1, 0.42, 0.81, 1000, DateTime.UtcNow)),
        JobEvent.Succeeded("w3", new JobResult(0.86, 0.3, 2811, 3, 40, 4000)),
        JobEvent.Failed("w3", new JobFailure(FailureCause.NonFiniteLoss, "loss NaN; lower train.lr", 12)),
        JobEvent.Cancelled("bob"),
        JobEvent.PreemptionRequested("gang-9"),
        JobEvent.Preempted("w3", 42),
        JobEvent.RecoveredFromStorage("silo-b", "silo-a", JobState.Running, 500, 300),
        JobEvent.GangPlaced([Rank, Rank with { NodeId = "w4", AssignmentEpoch = 18 }], 300),
        JobEvent.GangGrowing([Rank]),
        JobEvent.GangFormed(2, 5, 300),
        JobEvent.RankUp("w4"),
        JobEvent.RankRestarted("w4"),
        JobEvent.RankJoinedAtOnce("w4", 3, 6),
        JobEvent.RanksJoined([Rank], 120, 3, 7),
        JobEvent.RankRemoved("w4", RankRemoval.FoundDead, Rank, 1, 77, 3.2, "nothing from rank 1") with { Ranks = 2, MembershipEpoch = 8 },
        JobEvent.MembershipReFormed("w4", 77, 9, 3, 1, Rank, PeerFailure.ConnectionLost, "connection closed"),
        JobEvent.GangPaused(1, 2),
        JobEvent.GangRequeued(300),
        JobEvent.TrainingResumed(80, 2, TimeSpan.FromSeconds(4.7), GangPause.PeerLost),
        JobEvent.ShardRebuilt("job-1/0/1", "0/1", "silo-b", 120, TimeSpan.FromMilliseconds(38), 1_000_000),
        JobEvent.ParityRebuilt("job-1/0/3", "0/0", "silo-b", TimeSpan.FromMilliseconds(40), 2_000_000),
        JobEvent.ShardMoved("0/2", "silo-a", "silo-c"),
        JobEvent.RolledBack("w3", 160, 150, TimeSpan.FromMilliseconds(900), "shard restored"),
        JobEvent.NonFiniteStepSkipped("w3", 5, [1]),
        JobEvent.MalformedDataSkipped("w3", "/data/clicks.tsv", 3, "line 9: 39 fields"),
        JobEvent.FoundUnschedulable(new Unschedulable(Orchestrator.Core.Scheduling.UnschedulableCause.TooManyDevices, 8, 4, null)),
        JobEvent.FoundSchedulable(),
    ];

    [Fact]
    public void EveryKind_HasAFactory_AndASentenceOfItsOwn()
    {
        var events = OneOfEach().ToList();

        Assert.Equal(Enum.GetValues<JobEventKind>().Order(), events.Select(e => e.Kind).Order());
        Assert.All(events, e =>
        {
            Assert.False(string.IsNullOrWhiteSpace(e.Source), $"{e.Kind} has no source");
            Assert.NotEqual(e.Kind.ToString(), e.Message);
            Assert.DoesNotContain("{", e.Message);
        });
    }

    [Fact]
    public void TheSentence_SaysWhatTheFieldsSay()
    {
        var placed = JobEvent.Placed(Rank, resumeStep: 300);
        var removed = OneOfEach().Single(e => e.Kind == JobEventKind.RankRemoved);
        var rolledBack = OneOfEach().Single(e => e.Kind == JobEventKind.RolledBack);

        Assert.Equal("placed on w3/cpu:1 in fused array array-17 of 4 jobs (assignment epoch 17); will resume from checkpoint at step 300", placed.Message);
        Assert.Equal("rank 1 (w3/cpu:1) removed at step 77: nothing from rank 1; its node silent for 3.2 s; 2 rank(s) left (membership epoch 8)", removed.Message);
        Assert.Equal((160L, 150L), (rolledBack.Step, rolledBack.ResumeStep));
        Assert.StartsWith("rolled back from step 160 to the checkpoint at step 150 in 900 ms: 10 steps to train again", rolledBack.Message);
    }

    [Fact]
    public void Incidents_AreCategorized_AndRendered_FromTheirFields()
    {
        var lost = Incident.NodeLost("w3", TimeSpan.FromSeconds(5), 2, ["job-1", "job-2"], ["job-2"], TimeSpan.FromSeconds(5.4));
        var failed = Incident.JobFailed("w3", "job-1", new JobFailure(FailureCause.OutOfMemory, "use a smaller batch size or model"));

        Assert.Equal((IncidentKind.NodeLost, FailureCategory.NodeLost), (lost.Kind, lost.Category));
        Assert.Equal("node w3 sent no heartbeat for 5 s: declared dead, 2 assignment(s) rescheduled, and data-parallel ranks of job-2 already removed by their peers", lost.Message);
        Assert.Equal((FailureCategory.OutOfMemory, FailureCause.OutOfMemory), (failed.Category, failed.Cause));
        Assert.Equal(["job-1"], failed.Jobs);
        Assert.Equal("job failed: out of memory on the worker: use a smaller batch size or model", failed.Message);
    }
}
