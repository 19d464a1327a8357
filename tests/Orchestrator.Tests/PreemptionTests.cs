using Orchestrator.Core.Scheduling;

namespace Orchestrator.Tests;

/// <summary>
/// Preemption with mixed priorities, as properties of the production policy over random clusters and queues, and as
/// the scheduler's loop run pass after pass (preempted arrays leave and requeue with their own priority): a job is
/// never preempted for a gang of lower or equal priority, and a gang that can start does start, preempting each job
/// at most once. (Running work carried priority 0, so a gang of priority 1 preempted jobs of priority 1000, which
/// then outranked it and were placed again at once: 80 preemptions in 45 s and the gang never started.)
/// </summary>
public class PreemptionTests
{
    readonly PriorityBestFitPolicy _policy = new();

    sealed record Scenario(List<NodeCapacity> Nodes, List<PendingJob> Queue);

    static Scenario RandomScenario(Random rng)
    {
        var nodes = new List<NodeCapacity>();
        var seq = 0L;
        for (int n = 0; n < rng.Next(1, 5); n++)
        {
            var devices = rng.Next(1, 5);
            var free = new List<string>();
            var running = new List<RunningArray>();
            for (int d = 0; d < devices; d++)
            {
                if (rng.Next(3) == 0) { free.Add($"cpu:{d}"); continue; }
                var width = rng.Next(1, 4);
                running.Add(new RunningArray($"cpu:{d}", Enumerable.Range(0, width).Select(k => $"run-{n}-{d}-{k}").ToList(), rng.Next(-3, 12), Preemptible: rng.Next(5) > 0));
            }
            nodes.Add(new NodeCapacity($"n{n}", free, Running: running));
        }
        var queue = new List<PendingJob>();
        for (int j = 0; j < rng.Next(1, 10); j++)
            queue.Add(rng.Next(3) == 0
                ? new PendingJob($"gang-{j}", rng.Next(-3, 12), seq++, rng.Next(1, 8), Gang: true, MaxDevices: 8)
                : new PendingJob($"single-{j}", rng.Next(-3, 12), seq++, 1));
        return new Scenario(nodes, queue);
    }

    [Fact]
    public void APreemption_StopsOnlyPreemptibleArraysOfLowerPriority_EachOnce_AndNeverPlacesWhatItStops()
    {
        var rng = new Random(15);
        var preemptions = 0;
        for (int trial = 0; trial < 2000; trial++)
        {
            var s = RandomScenario(rng);
            var decision = _policy.Decide(s.Queue, s.Nodes);
            var arrays = s.Nodes.SelectMany(n => (n.Running ?? []).Select(a => (n.NodeId, a))).ToDictionary(x => new DeviceSlot(x.NodeId, x.a.Device), x => x.a);
            var priority = s.Queue.ToDictionary(j => j.JobId, j => j.Priority);
            foreach (var p in decision.Preemptions)
            {
                var array = arrays[p.Slot];
                Assert.True(array.Preemptible, $"trial {trial}: preempted a gang's rank at {p.Slot}");
                Assert.True(array.Priority < priority[p.ForJobId], $"trial {trial}: array of priority {array.Priority} preempted for {p.ForJobId} of priority {priority[p.ForJobId]}");
                Assert.Equal(array.JobIds, p.JobIds);
            }
            Assert.Equal(decision.Preemptions.Count, decision.Preemptions.Select(p => p.Slot).Distinct().Count());
            var placed = decision.Placements.SelectMany(p => p.JobIds).ToHashSet();
            Assert.DoesNotContain(decision.Preemptions.SelectMany(p => p.JobIds), placed.Contains);
            preemptions += decision.Preemptions.Count;
        }
        Assert.True(preemptions > 100, $"only {preemptions} preemptions in 2000 trials: the scenarios never exercise preemption");
    }

    /// <summary>
    /// The scheduler's loop, pass after pass, on 6 nodes of 2 devices, all busy with single jobs of mixed priorities,
    /// more of them queued (some above the gang, some below), and a gang of priority 5 needing 6 devices. A preempted
    /// array leaves before the next pass and its jobs queue again with their priority; placed single jobs run on.
    /// </summary>
    [Fact]
    public void AGangThatCanStart_StartsWithinAFewPasses_PreemptingEachJobAtMostOnce()
    {
        var rng = new Random(16);
        var started = 0;
        for (int trial = 0; trial < 300; trial++)
        {
            const int GangPriority = 5, GangDevices = 6, Nodes = 6;
            var running = new Dictionary<DeviceSlot, RunningArray>();
            var queue = new OrderedQueue();
            var priorityOf = new Dictionary<string, int>();
            long seq = 0;
            for (int n = 0; n < Nodes; n++)
                for (int d = 0; d < 2; d++)
                {
                    var id = $"run-{n}-{d}";
                    priorityOf[id] = rng.Next(0, 9);
                    running[new DeviceSlot($"n{n}", $"cpu:{d}")] = new RunningArray($"cpu:{d}", [id], priorityOf[id], Preemptible: true);
                }
            queue.Add(new PendingJob("gang", GangPriority, seq++, GangDevices, Gang: true, MaxDevices: GangDevices));
            for (int j = 0; j < 4; j++)
            {
                var id = $"queued-{j}";
                priorityOf[id] = rng.Next(0, 11);
                queue.Add(new PendingJob(id, priorityOf[id], seq++, 1));
            }
            var preemptedBy = new Dictionary<string, int>();
            var leaving = new List<DeviceSlot>();
            int? startedAt = null;
            for (int pass = 0; pass < 20 && startedAt is null; pass++)
            {
                foreach (var slot in leaving)
                {
                    foreach (var id in running[slot].JobIds) queue.Add(new PendingJob(id, priorityOf[id], seq++, 1));
                    running.Remove(slot);
                }
                leaving.Clear();
                var nodes = Enumerable.Range(0, Nodes).Select(n => new NodeCapacity($"n{n}",
                    Enumerable.Range(0, 2).Select(d => $"cpu:{d}").Where(d => !running.ContainsKey(new DeviceSlot($"n{n}", d))).ToList(),
                    Running: running.Where(r => r.Key.NodeId == $"n{n}").Select(r => r.Value).ToList())).ToList();
                var decision = _policy.Decide(queue, nodes);
                foreach (var p in decision.Preemptions)
                {
                    Assert.Equal("gang", p.ForJobId);
                    foreach (var id in p.JobIds)
                    {
                        Assert.True(priorityOf[id] < GangPriority, $"trial {trial}: {id} of priority {priorityOf[id]} preempted for the gang of {GangPriority}");
                        preemptedBy[id] = preemptedBy.GetValueOrDefault(id) + 1;
                    }
                    if (!leaving.Contains(p.Slot)) leaving.Add(p.Slot);
                }
                foreach (var p in decision.Placements)
                {
                    queue.RemoveAll(q => p.JobIds.Contains(q.JobId));
                    if (p.JobId == "gang") { startedAt = pass; break; }
                    foreach (var slot in p.Slots) running[slot] = new RunningArray(slot.Device, p.JobIds, p.JobIds.Max(id => priorityOf[id]), Preemptible: true);
                }
            }
            Assert.All(preemptedBy, x => Assert.True(x.Value == 1, $"trial {trial}: {x.Key} preempted {x.Value} times for the same gang"));
            // The gang can start when the devices held by jobs below it, less those that queued jobs above it take
            // first as devices free up, are enough.
            var lowerHeld = priorityOf.Count(x => x.Key.StartsWith("run-") && x.Value < GangPriority);
            var higherQueued = priorityOf.Count(x => x.Key.StartsWith("queued-") && x.Value > GangPriority);
            if (lowerHeld - higherQueued >= GangDevices)
            {
                Assert.True(startedAt is not null, $"trial {trial}: {lowerHeld} devices held by lower priorities, yet the gang never started");
                Assert.True(startedAt <= 3, $"trial {trial}: the gang started only in pass {startedAt}");
                started++;
            }
        }
        Assert.True(started > 100, $"only {started} of 300 trials could start the gang");
    }
}
