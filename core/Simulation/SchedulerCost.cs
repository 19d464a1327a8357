using System.Diagnostics;
using Orchestrator.Core.Scheduling;

namespace Orchestrator.Core.Simulation;

/// <summary>One point of the scheduler-cost curve: placement decisions per second of policy time.</summary>
public sealed record SchedulerCostPoint(int Devices, int Queued, int FreeDevices, int Passes, long Decisions, long JobsPlaced, double PolicySeconds)
{
    public double DecisionsPerSecond => Decisions / PolicySeconds;
    public double MicrosecondsPerDecision => PolicySeconds * 1e6 / Decisions;
}

/// <summary>
/// The production policy's cost at scale: a cluster of <c>devices</c> (8 per node) in steady state, a fraction of
/// them free, and a queue shaped like the study's workload (sweeps of small fusable jobs, a few gangs of higher
/// priority), kept in the policy's order (an <see cref="OrderedQueue"/>) as the simulator keeps it. Each pass places
/// what fits. Policy time only: keeping the queue in order is the owner's cost (<see cref="OrderedQueue.Add"/>).
/// </summary>
public static class SchedulerCost
{
    public static SchedulerCostPoint Measure(ISchedulingPolicy policy, int devices, int queued, int seed, double freeFraction = 0.02, int passes = 5)
    {
        var random = new Random(seed);
        var freeRandom = new Random(seed + 1); // free devices drawn apart, so that queues of any length get the same
        const int perNode = 8;
        var nodeCount = devices / perNode;
        var names = Enumerable.Range(0, perNode).Select(d => $"d{d}").ToArray();
        var queue = new OrderedQueue(StudyShapedQueue(queued, random));
        WarmUp(policy);
        var (decisions, placed, seconds, freeDevices) = (0L, 0L, 0.0, 0);
        // One untimed pass first, on this queue and cluster size.
        for (int pass = -1; pass < passes; pass++)
        {
            var nodes = new List<NodeCapacity>(nodeCount);
            for (int n = 0; n < nodeCount; n++)
            {
                var free = names.Where(_ => freeRandom.NextDouble() < freeFraction).ToList();
                freeDevices += free.Count;
                if (free.Count > 0) nodes.Add(new NodeCapacity($"n{n}", free));
            }
            var timer = Stopwatch.StartNew();
            var decision = policy.Decide(queue, nodes);
            if (pass < 0)
            {
                freeDevices = 0;
                continue;
            }
            seconds += timer.Elapsed.TotalSeconds;
            decisions += decision.Placements.Count;
            placed += decision.Placements.Sum(p => p.JobIds.Count);
        }
        return new SchedulerCostPoint(devices, queued, freeDevices / passes, passes, decisions, placed, seconds);
    }

    /// <summary>3% gangs of 64 devices and priority 1 (first in order), the rest sweeps of 8 small jobs.</summary>
    static IEnumerable<PendingJob> StudyShapedQueue(int queued, Random random)
    {
        for (int i = 0; i < queued; i++)
            yield return random.NextDouble() < 0.03 ? new PendingJob($"g{i}", 1, i, 64, Gang: true, MaxDevices: 64) : new PendingJob($"s{i}", 0, i, 1, $"sweep-{i / 8}");
    }

    /// <summary>
    /// The scheduler grain calls the policy on every pass, so what counts is its steady-state code: the runtime
    /// compiles a method quickly first and optimizes it after some tens of calls, in the background (later when other
    /// code is being compiled meanwhile, e.g. the CLI's progress display). Calls on a small queue with pauses for that
    /// compilation, once per policy type, before anything is timed.
    /// </summary>
    static void WarmUp(ISchedulingPolicy policy)
    {
        lock (Warm)
            if (!Warm.Add(policy.GetType())) return;
        var random = new Random(0);
        var queue = new OrderedQueue(StudyShapedQueue(2_000, random));
        var nodes = Enumerable.Range(0, 250).Select(n => new NodeCapacity($"n{n}", Enumerable.Range(0, random.Next(0, 3)).Select(d => $"d{d}").ToList())).ToList();
        for (int round = 0; round < 4; round++)
        {
            for (int call = 0; call < 60; call++) policy.Decide(queue, nodes);
            Thread.Sleep(250);
        }
    }

    static readonly HashSet<Type> Warm = [];
}
