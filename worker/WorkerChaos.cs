using System.Collections.Concurrent;
using System.Diagnostics;

namespace Orchestrator.Worker;

/// <summary>
/// Faults injected into this worker process (orch chaos), delivered with heartbeat replies: a crash (SIGKILL to
/// itself), a hang (SIGSTOP to itself, with a detached shell that sends SIGCONT when it is over: the process stops
/// whole, heartbeats and training, as a stuck collective or a frozen host would), latency or loss on every grain
/// call it makes (as an outgoing call filter), and non-finite gradients from a rank for some steps. Only a worker
/// started with --allow-chaos applies any; it checks each fault's values itself (whatever the silo let through) and
/// never throws, so that no fault stops the host that delivered it.
/// </summary>
public sealed class WorkerChaos(NodeAgentOptions options, ILogger<WorkerChaos> log) : IOutgoingGrainCallFilter
{
    readonly ConcurrentDictionary<string, int> _poisoned = new();
    (DateTime Until, TimeSpan Delay) _slow;
    (DateTime Until, double Rate) _drop;

    /// <summary>Applies the fault if this worker allows chaos and the fault is valid; true if it was applied.</summary>
    public bool Apply(NodeFault? fault)
    {
        if (fault is null) return false;
        if (!options.AllowChaos)
        {
            log.ChaosRefused(fault.ToString(), "this worker was not started with --allow-chaos");
            return false;
        }
        try
        {
            fault.Validate();
        }
        catch (ArgumentException e)
        {
            log.ChaosRefused(fault.ToString(), e.Message);
            return false;
        }
        log.ChaosFault(fault.Kind, fault.ToString());
        try
        {
            Inject(fault);
            return true;
        }
        catch (Exception e)
        {
            log.ChaosNotApplied(fault.ToString(), e);
            return false;
        }
    }

    void Inject(NodeFault fault)
    {
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(fault.Seconds);
        switch (fault.Kind)
        {
            case FaultKind.KillWorker:
                Process.GetCurrentProcess().Kill();
                break;
            case FaultKind.HangWorker:
                var pid = Environment.ProcessId.ToString();
                Process.Start("/bin/sh", ["-c", $"sleep {fault.Seconds.ToString(System.Globalization.CultureInfo.InvariantCulture)}; kill -CONT {pid}"]);
                Process.Start("kill", ["-STOP", pid])?.WaitForExit();
                break;
            case FaultKind.SlowNode:
                _slow = (until, TimeSpan.FromMilliseconds(fault.DelayMs));
                break;
            case FaultKind.DropCalls:
                _drop = (until, fault.Rate);
                break;
            case FaultKind.NanGradients:
                _poisoned[fault.JobId!] = fault.Steps;
                break;
        }
    }

    /// <summary>True if this worker's rank of the job must send non-finite gradients in its next step.</summary>
    public bool TakePoison(string jobId)
    {
        while (_poisoned.TryGetValue(jobId, out var left) && left > 0)
            if (_poisoned.TryUpdate(jobId, left - 1, left)) return true;
        return false;
    }

    public async Task Invoke(IOutgoingGrainCallContext context)
    {
        var now = DateTime.UtcNow;
        var (slowUntil, delay) = _slow;
        if (now < slowUntil) await Task.Delay(delay);
        var (dropUntil, rate) = _drop;
        if (now < dropUntil && Random.Shared.NextDouble() < rate)
            throw new TimeoutException($"chaos: call {context.InterfaceName}.{context.MethodName} dropped");
        await context.Invoke();
    }
}
