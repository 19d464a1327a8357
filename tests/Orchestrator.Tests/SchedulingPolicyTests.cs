using Orchestrator.Core.Scheduling;

namespace Orchestrator.Tests;

public class SchedulingPolicyTests
{
    readonly PriorityBestFitPolicy _policy = new();

    static NodeCapacity Node(string id, int free) => new(id, Enumerable.Range(0, free).Select(i => $"cpu:{i}").ToList());

    [Fact]
    public void HigherPriority_IsPlacedFirst_ThenSubmissionOrder()
    {
        var queue = new[] { new PendingJob("low-early", 0, 1, 1), new PendingJob("high", 5, 3, 1), new PendingJob("low-late", 0, 2, 1) };

        var placed = _policy.Place(queue, [Node("n1", 2)]);

        Assert.Equal(["high", "low-early"], placed.Select(p => p.JobId).ToArray());
    }

    [Fact]
    public void BestFit_PrefersTheFullestNodeThatFits()
    {
        var placed = _policy.Place([new PendingJob("j", 0, 1, 1)], [Node("empty", 4), Node("almost-full", 1), Node("half", 2)]);

        Assert.Equal("almost-full", Assert.Single(placed).NodeId);
    }

    [Fact]
    public void MultiDeviceJob_GetsDistinctDevicesOnOneNode_AndKeepsWholeNodesFree()
    {
        var placed = _policy.Place(
            [new PendingJob("one", 0, 1, 1), new PendingJob("three", 0, 2, 3)],
            [Node("a", 4), Node("b", 3)]);

        var three = placed.Single(p => p.JobId == "three");
        Assert.Equal(3, three.Devices.Distinct().Count());
        // "one" went to b (best fit), which left a's 4 devices for "three" rather than failing it.
        Assert.Equal("b", placed.Single(p => p.JobId == "one").NodeId);
        Assert.Equal("a", three.NodeId);
    }

    [Fact]
    public void JobThatFitsNowhere_IsSkipped_AndSmallerOnesStillRun()
    {
        var placed = _policy.Place([new PendingJob("big", 9, 1, 8), new PendingJob("small", 0, 2, 1)], [Node("n", 2)]);

        Assert.Equal("small", Assert.Single(placed).JobId);
    }

    [Fact]
    public void NeverPlacesMoreThanCapacity_AndNeverReusesADevice()
    {
        var queue = Enumerable.Range(0, 50).Select(i => new PendingJob($"j{i}", i % 3, i, 1)).ToList();
        var nodes = new[] { Node("a", 3), Node("b", 5), Node("c", 0) };

        var placed = _policy.Place(queue, nodes);

        Assert.Equal(8, placed.Count);
        Assert.Equal(placed.Count, placed.Select(p => (p.NodeId, p.Devices[0])).Distinct().Count());
        Assert.DoesNotContain(placed, p => p.NodeId == "c");
        // The 8 placed are the 8 best by (priority desc, sequence asc).
        var expected = queue.OrderByDescending(j => j.Priority).ThenBy(j => j.SubmitSequence).Take(8).Select(j => j.JobId);
        Assert.Equal(expected.Order(), placed.Select(p => p.JobId).Order());
    }

    [Fact]
    public void EmptyInputs_PlaceNothing()
    {
        Assert.Empty(_policy.Place([], [Node("n", 4)]));
        Assert.Empty(_policy.Place([new PendingJob("j", 0, 1, 1)], []));
    }
}
