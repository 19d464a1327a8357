using System.Diagnostics;
using Orchestrator.Core.Reliability;
using Orchestrator.Core.Scheduling;

namespace Orchestrator.Core.Simulation;

/// <summary>Node failures in the simulation: a node fails (a Poisson process per node), what ran on it recovers by the
/// chosen mechanism, and the node comes back after its repair time.</summary>
public sealed partial class ClusterSimulator
{
    void Fail(int node)
    {
        if (!_up[node]) return;
        _failureCount++;
        var category = DrawCategory();
        var hit = _occupant[node].Where(o => o is not null).Distinct().ToList();
        _up[node] = false;
        _nodesWithFree.Remove(node);
        for (int d = 0; d < _occupant[node].Length; d++) if (_occupant[node][d] is not null) Release(node, d, keepDown: true);
        foreach (var o in hit)
        {
            if (o is ArrayRun array)
                foreach (var m in array.Members.Where(m => m.Done is null)) RollBack(m, category, m.Job.Devices / (double)array.Members.Count);
            else if (o is JobRun large) LoseNode(large, node, category);
        }
        Schedule(_now + -Math.Log(1 - _failureRandom.NextDouble()) * _failures.RepairHours * 3600, Kind.NodeRepaired, node);
    }

    void Repair(int node, double perSecond)
    {
        _up[node] = true;
        _free[node] = _deviceNames.Length;
        _nodesWithFree.Add(node);
        ScheduleFailure(node, _now, perSecond);
        RequestPass();
    }

    FailureCategory DrawCategory()
    {
        var shares = _failures.CategoryShares;
        var u = _failureRandom.NextDouble() * shares.Values.Sum();
        foreach (var (c, share) in shares.OrderBy(x => x.Key))
            if ((u -= share) <= 0) return c;
        return shares.Keys.Max();
    }

    /// <summary>A job that loses its node goes back to its last checkpoint and waits to be placed again (after detection).</summary>
    void RollBack(JobRun r, FailureCategory category, double devices)
    {
        Advance(r);
        var interval = CheckpointInterval(r);
        var lost = r.Progress - Math.Floor(r.Progress / interval) * interval;
        Mark(r, RunPhase.Stalled);
        (r.Progress, r.Remaining) = (r.Progress - lost, r.Remaining + lost);
        if (r.Array < 0) foreach (var (n, d) in r.Slots.Where(s => _occupant[s.Node][s.Device] == r)) Release(n, d);
        Stop(r);
        Lose(category, devices * (lost + _times.DetectionSeconds + _times.RestartSeconds));
        Schedule(_now + _times.DetectionSeconds, Kind.Requeue, r.Job.Id, r.Version);
    }

    void LoseNode(JobRun r, int node, FailureCategory category)
    {
        if (_s.LargeRecovery == LargeJobRecovery.CheckpointRestart)
        {
            RollBack(r, category, r.Job.Devices);
            return;
        }
        // Erasure-coded or elastic: no rollback. The job pauses for detection plus the rebuild (or the gang's re-forming),
        // then trains on without the lost devices, asking for them back.
        Advance(r);
        var lostDevices = r.Slots.Count(s => s.Node == node);
        r.Slots.RemoveAll(s => s.Node == node);
        r.Devices -= lostDevices;
        r.Training = false;
        r.Version++;
        Mark(r, RunPhase.Paused);
        var pause = _times.DetectionSeconds + (_s.LargeRecovery == LargeJobRecovery.ErasureCoded ? _times.RebuildSeconds : _times.ShrinkSeconds);
        Lose(category, r.Job.Devices * pause);
        r.Rate = RateOf(r, 1);
        Schedule(_now + pause, Kind.Resume, r.Job.Id, r.Version);
        if (!r.GrowthWanted)
        {
            r.GrowthWanted = true;
            Queue(new PendingJob(Id(r), 1, r.Job.Id, 1, Gang: true, MaxDevices: lostDevices, Growth: true));
        }
    }

    void Lose(FailureCategory category, double deviceSeconds) => _lost[category] = _lost.GetValueOrDefault(category) + deviceSeconds / 3600;
}
