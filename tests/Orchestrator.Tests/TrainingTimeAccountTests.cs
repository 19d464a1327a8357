using Orchestrator.Core.Reliability;

namespace Orchestrator.Tests;

/// <summary>A job's wall time splits into the study's W = Q + R + U exactly, from its phase marks.</summary>
public class TrainingTimeAccountTests
{
    static readonly DateTime T0 = new(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
    static PhaseMark At(double seconds, RunPhase phase, long step) => new(T0.AddSeconds(seconds), phase, step);

    [Fact]
    public void AFailureFreeJob_IsProductiveExceptForQueueingAndStarting()
    {
        var a = TrainingTimeAccounting.Account([At(0, RunPhase.Queued, 0), At(10, RunPhase.Starting, 0), At(15, RunPhase.Training, 0), At(115, RunPhase.Ended, 1000)],
            T0.AddHours(1), 0);

        Assert.Equal(TimeSpan.FromSeconds(115), a.Wall);
        Assert.Equal(TimeSpan.FromSeconds(10), a.Queueing);
        Assert.Equal(TimeSpan.FromSeconds(5), a.Starting);
        Assert.Equal(TimeSpan.FromSeconds(100), a.Productive);
        Assert.Equal(100.0 / 115, a.Ettr, 12);
        Assert.Equal(0, a.LostSteps);
    }

    [Fact]
    public void ANodeLost_CostsDetectionRequeueRestartAndTheStepsSinceTheCheckpoint()
    {
        // Trains steps 0..600 in 60 s (0.1 s/step), last progress at 75 s; the node is declared dead at 80 s; the
        // job waits 4 s, starts for 6 s and resumes from the checkpoint at step 500: 100 steps (10 s) redone.
        PhaseMark[] marks =
        [
            At(0, RunPhase.Queued, 0), At(5, RunPhase.Starting, 0), At(15, RunPhase.Training, 0), At(75, RunPhase.Stalled, 600),
            At(80, RunPhase.Queued, 600), At(84, RunPhase.Starting, 600), At(90, RunPhase.Training, 500), At(140, RunPhase.Ended, 1000),
        ];
        var a = TrainingTimeAccounting.Account(marks, T0.AddHours(1), 0);

        Assert.Equal(TimeSpan.FromSeconds(140), a.Wall);
        Assert.Equal(TimeSpan.FromSeconds(5 + 4), a.Queueing);
        Assert.Equal(TimeSpan.FromSeconds(10 + 6), a.Starting);
        Assert.Equal(TimeSpan.FromSeconds(5), a.Detection);
        Assert.Equal(100, a.LostSteps);
        Assert.Equal(10, a.LostProgress.TotalSeconds, 9);
        Assert.Equal(60 + 50 - 10, a.Productive.TotalSeconds, 9);
        Assert.Equal(a.Wall, a.Queueing + a.Productive + a.Unproductive);
    }

    [Fact]
    public void AGangPause_IsRecovery_AndARunningJobIsAccountedUpToNow()
    {
        PhaseMark[] marks = [At(0, RunPhase.Starting, 0), At(2, RunPhase.Training, 0), At(20, RunPhase.Stalled, 180), At(21, RunPhase.Paused, 180), At(24, RunPhase.Training, 180)];
        var a = TrainingTimeAccounting.Account(marks, T0.AddSeconds(30), 240);

        Assert.Equal(TimeSpan.FromSeconds(30), a.Wall);
        Assert.Equal(TimeSpan.FromSeconds(1), a.Detection);
        Assert.Equal(TimeSpan.FromSeconds(3), a.Recovery);
        Assert.Equal(TimeSpan.FromSeconds(18 + 6), a.Productive);
        Assert.Equal(0, a.LostSteps);
    }

    [Fact]
    public void LostProgress_NeverExceedsTheTrainingTime()
    {
        // Resumed from step 0 after reaching 1000 twice: at most all the training so far is lost, never more.
        PhaseMark[] marks =
        [
            At(0, RunPhase.Training, 0), At(10, RunPhase.Queued, 1000), At(11, RunPhase.Training, 0), At(21, RunPhase.Queued, 1000),
            At(22, RunPhase.Training, 0), At(32, RunPhase.Ended, 1000),
        ];
        var a = TrainingTimeAccounting.Account(marks, T0.AddHours(1), 0);

        Assert.Equal(2000, a.LostSteps);
        Assert.Equal(TimeSpan.FromSeconds(20), a.LostProgress);
        Assert.Equal(TimeSpan.FromSeconds(10), a.Productive);
    }

    [Fact]
    public void IncidentImpact_IsTheTimeUntilTrainingAgain_AndTheStepsRedone()
    {
        PhaseMark[] marks = [At(0, RunPhase.Training, 0), At(75, RunPhase.Stalled, 600), At(80, RunPhase.Queued, 600), At(90, RunPhase.Training, 500)];

        var hit = IncidentImpact.Of(T0.AddSeconds(76), marks);
        Assert.Equal(TimeSpan.FromSeconds(14), hit.Recovery);
        Assert.Equal(100, hit.LostSteps);
        Assert.Null(IncidentImpact.Of(T0.AddSeconds(95), marks).Recovery); // nothing after it yet
    }

    [Fact]
    public void MeasuredReliability_CountsInfrastructureFailuresPerNodeDay()
    {
        var nodes = new Dictionary<string, TimeSpan> { ["a"] = TimeSpan.FromDays(3), ["b"] = TimeSpan.FromDays(1) };
        FailureRecord[] failures =
        [
            new(T0, FailureCategory.NodeLost, "a"), new(T0, FailureCategory.WorkerCrash, "a"), new(T0, FailureCategory.SiloCrash, null),
            new(T0, FailureCategory.UserError, "b"), new(T0, FailureCategory.Preemption, "b"),
        ];
        var m = MeasuredReliability.Measure(nodes, failures);

        Assert.Equal(4, m.NodeDays, 12);
        Assert.Equal(3, m.Failures); // the job's own errors and preemptions are not the cluster's failures
        Assert.Equal(0.75, m.FailuresPerNodeDay, 12);
        Assert.Equal(TimeSpan.FromDays(4.0 / 3), m.ClusterMttf);
        Assert.Equal(TimeSpan.FromDays(1.5), m.Nodes.Single(n => n.Name == "a").Mttf);
        Assert.Null(m.Nodes.Single(n => n.Name == "b").Mttf);
        Assert.Equal(TimeSpan.FromDays(4), m.Categories.Single(c => c.Name == "NodeLost").Mttf);
        Assert.Equal(1, m.Counts[FailureCategory.UserError]);
    }
}
