namespace Orchestrator.Tests;

/// <summary>The job's life-cycle rules as a table, and fencing: the pure state machine the job grain drives.</summary>
public sealed class JobLifecycleTests
{
    static readonly Dictionary<(JobState, JobTrigger), JobState> Allowed = new()
    {
        [(JobState.Pending, JobTrigger.Placed)] = JobState.Scheduled,
        [(JobState.Recovering, JobTrigger.Placed)] = JobState.Scheduled,
        [(JobState.Scheduled, JobTrigger.Started)] = JobState.Running,
        [(JobState.Scheduled, JobTrigger.PlacementNotTaken)] = JobState.Pending,
        [(JobState.Scheduled, JobTrigger.Lost)] = JobState.Recovering,
        [(JobState.Running, JobTrigger.Lost)] = JobState.Recovering,
        [(JobState.Scheduled, JobTrigger.Yielded)] = JobState.Pending,
        [(JobState.Running, JobTrigger.Yielded)] = JobState.Pending,
        [(JobState.Scheduled, JobTrigger.Succeeded)] = JobState.Succeeded,
        [(JobState.Running, JobTrigger.Succeeded)] = JobState.Succeeded,
        [(JobState.Scheduled, JobTrigger.Failed)] = JobState.Failed,
        [(JobState.Running, JobTrigger.Failed)] = JobState.Failed,
        [(JobState.Pending, JobTrigger.Cancelled)] = JobState.Cancelled,
        [(JobState.Scheduled, JobTrigger.Cancelled)] = JobState.Cancelled,
        [(JobState.Running, JobTrigger.Cancelled)] = JobState.Cancelled,
        [(JobState.Recovering, JobTrigger.Cancelled)] = JobState.Cancelled,
        [(JobState.Pending, JobTrigger.FoundUnschedulable)] = JobState.Unschedulable,
        [(JobState.Recovering, JobTrigger.FoundUnschedulable)] = JobState.Unschedulable,
        [(JobState.Unschedulable, JobTrigger.FoundSchedulable)] = JobState.Pending,
        [(JobState.Unschedulable, JobTrigger.Placed)] = JobState.Scheduled,
        [(JobState.Unschedulable, JobTrigger.Cancelled)] = JobState.Cancelled,
    };

    [Fact]
    public void EveryStateAndTrigger_LeadsWhereTheTableSays_AndNowhereElse()
    {
        foreach (var state in Enum.GetValues<JobState>())
            foreach (var trigger in Enum.GetValues<JobTrigger>())
            {
                var expected = Allowed.TryGetValue((state, trigger), out var to) ? to : (JobState?)null;
                Assert.Equal(expected, JobLifecycle.Next(state, trigger, hasRecovered: false));
                if (expected is null) Assert.Throws<InvalidOperationException>(() => JobLifecycle.Apply(state, trigger, hasRecovered: false));
            }
    }

    [Theory]
    [InlineData(JobTrigger.PlacementNotTaken)]
    [InlineData(JobTrigger.Yielded)]
    public void AJobThatRecoveredBefore_WaitsAsRecovering(JobTrigger trigger) =>
        Assert.Equal(JobState.Recovering, JobLifecycle.Next(JobState.Scheduled, trigger, hasRecovered: true));

    [Fact]
    public void EndedJobs_TakeNoTrigger()
    {
        foreach (var ended in new[] { JobState.Succeeded, JobState.Failed, JobState.Cancelled })
            Assert.All(Enum.GetValues<JobTrigger>(), t => Assert.Null(JobLifecycle.Next(ended, t, hasRecovered: true)));
    }

    [Theory]
    [InlineData(false, JobState.Running, true, false, StopCause.NoSuchJob)]
    [InlineData(true, JobState.Cancelled, true, false, StopCause.Cancelled)]
    [InlineData(true, JobState.Succeeded, true, false, StopCause.Ended)]
    [InlineData(true, JobState.Running, false, false, StopCause.StaleAssignment)]
    [InlineData(true, JobState.Running, false, true, StopCause.NotARank)]
    public void Fencing_RefusesWithItsCause(bool exists, JobState state, bool current, bool dataParallel, StopCause expected) =>
        Assert.Equal(expected, JobLifecycle.Refusal(exists, state, current, dataParallel));

    [Fact]
    public void Fencing_LetsTheCurrentHolderAct() =>
        Assert.Null(JobLifecycle.Refusal(exists: true, JobState.Running, current: true, dataParallel: true));
}
