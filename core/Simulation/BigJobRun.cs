using Orchestrator.Core.Reliability;
using Orchestrator.Core.Scheduling;

namespace Orchestrator.Core.Simulation;

/// <summary>
/// The study's validation case in the simulator: one job on <c>devices</c> devices, failures only (spare nodes so it
/// never queues, nothing else running), checkpoints every interval at no cost, a fixed restart overhead. Its
/// simulated ETTR and MTTF are compared with the closed form (the study: within 5% of Monte Carlo).
/// </summary>
public static class BigJobRun
{
    public sealed record Outcome(double Ettr, int Failures, TimeSpan Mttf);

    public static Outcome Run(int devices, double days, int seed, double perThousandNodeDays, double intervalMinutes, double restartMinutes)
    {
        // 5% spare nodes replace failed ones (repairs take hours), so the job restarts at once: no queueing.
        var spare = Math.Max(2, (int)Math.Ceiling(devices / 8 * 0.05)) * 8;
        var job = new SimJob(0, 0, devices, 1e9, SimJobKind.Large, null);
        var settings = new SimulationSettings(devices + spare, days, seed, Trace: [job],
            Failures: new FailureModel(perThousandNodeDays, RepairHours: 4),
            Recovery: new RecoveryTimes(DetectionSeconds: 0, RestartSeconds: restartMinutes * 60, CheckpointWriteSeconds: 0, StartSeconds: 0, LargeCheckpointMinutes: intervalMinutes),
            LargeRecovery: LargeJobRecovery.CheckpointRestart, SchedulingPeriodSeconds: 0.001);
        var result = new ClusterSimulator(settings, SchedulingPolicies.Production()).Run($"one {devices}-device job");
        var outcome = result.LargeJobs.Single();
        return new Outcome(outcome.Ettr, outcome.Interruptions,
            outcome.Interruptions > 0 ? TimeSpan.FromHours(outcome.WallHours / outcome.Interruptions) : TimeSpan.MaxValue);
    }
}
