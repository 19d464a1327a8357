using Orchestrator.Core.Scheduling;

namespace Orchestrator.Tests;

/// <summary>Gang placement for data-parallel jobs: all of the minimum at once or nothing, bounded growth,
/// explicit backfill and preemption.</summary>
public class GangSchedulingTests
{
    readonly PriorityBestFitPolicy _policy = new();

    static NodeCapacity Node(string id, int free, params RunningArray[] running) =>
        new(id, Enumerable.Range(0, free).Select(i => $"cpu:{i}").ToList(), Running: running);

    static PendingJob Gang(string id, int min, int max, int priority = 0, long seq = 0) => new(id, priority, seq, min, Gang: true, MaxDevices: max);

    static PendingJob Single(string id, int priority = 0, long seq = 0) => new(id, priority, seq, 1, FusionKey: null);

    static RunningArray Array(string device, int priority, bool preemptible = true, params string[] jobs) =>
        new(device, jobs.Length > 0 ? jobs : [$"job@{device}"], priority, preemptible);

    [Fact]
    public void Gang_StartsWhenItsMinimumIsFree_TakesUpToItsMaximum_FromTheFreestNodesFirst()
    {
        var decision = _policy.Decide([Gang("g", min: 3, max: 4)], [Node("a", 1), Node("b", 3), Node("c", 2)]);

        var placement = Assert.Single(decision.Placements);
        Assert.Equal(4, placement.Slots.Count);
        Assert.Equal(4, placement.Slots.Distinct().Count());
        Assert.Equal(["b", "b", "b", "c"], placement.Slots.Select(s => s.NodeId).ToArray());
        Assert.Empty(decision.Preemptions);
    }

    [Fact]
    public void Gang_NeverHoldsAPartialGang()
    {
        var decision = _policy.Decide([Gang("g", min: 5, max: 8)], [Node("a", 2), Node("b", 2)]);

        Assert.Empty(decision.Placements);
    }

    [Fact]
    public void TwoWaitingGangs_CannotDeadlock_TheFirstTakesWhatItNeeds_TheOtherWaitsWhole()
    {
        var decision = _policy.Decide([Gang("first", 3, 3, priority: 1, seq: 1), Gang("second", 3, 3, priority: 1, seq: 2)], [Node("a", 2), Node("b", 2)]);

        var placement = Assert.Single(decision.Placements);
        Assert.Equal("first", placement.JobId);
        Assert.Equal(3, placement.Slots.Count);
    }

    [Fact]
    public void WhileAGangWaits_PreemptibleJobsBackfill_ButAnotherGangDoesNot()
    {
        var queue = new[] { Gang("big", 6, 6, priority: 5, seq: 1), Gang("small-gang", 2, 2, priority: 1, seq: 2), Single("s1", seq: 3), Single("s2", seq: 4) };

        var decision = _policy.Decide(queue, [Node("a", 2), Node("b", 1)]);

        Assert.Equal(["s1", "s2"], decision.Placements.Select(p => p.JobId).Order().ToArray());
        Assert.Empty(decision.Preemptions);
    }

    [Fact]
    public void GangReady_PreemptsTheLowestPriorityPreemptibleArrays_AndKeepsTheFreeDevicesForItself()
    {
        var nodes = new[]
        {
            Node("a", 1, Array("cpu:1", priority: 0, jobs: ["low-1", "low-2"]), Array("cpu:2", priority: 3)),
            Node("b", 1, Array("cpu:1", priority: 1), Array("cpu:2", priority: 9), Array("cpu:3", priority: 0, preemptible: false)),
        };
        var queue = new[] { Gang("g", 4, 4, priority: 5, seq: 1), Single("later", priority: 0, seq: 2) };

        var decision = _policy.Decide(queue, nodes);

        Assert.Empty(decision.Placements);
        Assert.Equal(2, decision.Preemptions.Count);
        Assert.All(decision.Preemptions, p => Assert.Equal("g", p.ForJobId));
        Assert.Contains(decision.Preemptions, p => p.JobIds.SequenceEqual(["low-1", "low-2"]));
        Assert.Contains(decision.Preemptions, p => p.Slot == new DeviceSlot("b", "cpu:1"));
    }

    [Fact]
    public void Gang_NeverPreemptsHigherPriorityWork_OrWhenPreemptingIsNotEnough()
    {
        var nodes = new[] { Node("a", 1, Array("cpu:1", priority: 7), Array("cpu:2", priority: 2)) };

        var decision = _policy.Decide([Gang("g", 4, 4, priority: 5), Single("later", seq: 2)], nodes);

        Assert.Empty(decision.Preemptions);
        // Not enough even with preemption: the free device is backfilled by a preemptible job.
        Assert.Equal("later", Assert.Single(decision.Placements).JobId);
    }

    [Fact]
    public void HigherPrioritySingleJobs_GoBeforeAGang()
    {
        var decision = _policy.Decide([Single("urgent", priority: 9, seq: 2), Gang("g", 2, 2, priority: 1, seq: 1)], [Node("a", 2)]);

        Assert.Equal("urgent", Assert.Single(decision.Placements).JobId);
    }

    [Fact]
    public void ARunningGangGrowsIntoFreeDevices_ButNotIntoThoseKeptForAWaitingGang()
    {
        var growth = new PendingJob("g", 0, 0, 1, Gang: true, MaxDevices: 3, Growth: true);

        var alone = _policy.Decide([growth], [Node("a", 2)]);
        var behindWaitingGang = _policy.Decide([Gang("big", min: 4, max: 4, priority: 5), growth],
            [Node("a", 2, Array("cpu:9", priority: 1))]);

        Assert.Equal(2, Assert.Single(alone.Placements).Slots.Count); // up to its room, from one device
        Assert.Empty(alone.Preemptions);
        Assert.DoesNotContain(behindWaitingGang.Placements, p => p.JobId == "g");
    }
}
