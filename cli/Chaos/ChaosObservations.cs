using Orchestrator.Core.Specs;

namespace Orchestrator.Cli.Chaos;

/// <summary>A fault the runner injected, and what it saw of its effect.</summary>
public sealed class InjectedFault(ScenarioFault fault, double at)
{
    public ScenarioFault Fault { get; } = fault;
    public ChaosFault Kind => Fault.Kind;
    /// <summary>Seconds into the run.</summary>
    public double At { get; } = at;
    public DateTime AtUtc { get; } = DateTime.UtcNow;
    public string Target { get; set; } = "";
    public string? Error { get; set; }
    /// <summary>A worker's incarnation when it was hit: a new one means its process was replaced.</summary>
    public string? Incarnation { get; set; }
    public double? Detected { get; set; }
    public double? Recovered { get; set; }
    public Dictionary<string, long> StepsAtInjection { get; } = [];
    /// <summary>Every running job's step once the fault took effect (detected, or its time was over): recovered when
    /// every one of them trained past it (or ended).</summary>
    public Dictionary<string, long>? Baseline { get; set; }
    public long StepsLost { get; set; }
    public bool Detectable => Kind.IsDetectable();

    /// <summary>When the fault's effect can be judged over: at detection for crashes and hangs, after its duration
    /// for slowdowns, call loss and outages, a second after non-finite gradients were ordered.</summary>
    public bool StillInEffect(double now) => Detectable ? Detected is null : Kind == ChaosFault.NanGradients ? now - At < 1 : now - At < Fault.For;
}

/// <summary>One submitted job as the runner watches it.</summary>
public sealed class JobWatch(string id, JobSpec spec)
{
    public string Id { get; } = id;
    public JobSpec Spec { get; } = spec;
    public JobInfo? Info { get; set; }
    public long LastStep { get; set; }
    /// <summary>A step back seen and not yet undone by the job's next reports.</summary>
    public (long From, long To, double At)? StepBack { get; set; }

    /// <summary>The job's recovery count when its step last moved.</summary>
    public int RecoveriesWhenAdvancing { get; set; }
    public long MaxStep { get; set; }
    public List<string> Backwards { get; } = [];
    public bool ErasureCoded => Spec.Embedding?.FaultTolerance.Mode == FaultToleranceMode.ErasureCoding;

    /// <summary>A worker fault hit a node running this job. Erasure coding protects the embedding against silo
    /// (parameter server) failures; a worker fault changes the computation (an elastic job trains on with fewer
    /// ranks, a single-worker job resumes its dense model from a checkpoint), so such a job is not compared.</summary>
    public bool HitOnItsWorker { get; set; }
    /// <summary>Why its tables are not compared with a failure-free run's (it trained with other ranks), or null.</summary>
    public string? NotCompared { get; set; }

    public bool RunsOn(string node) => Info is { } i && (i.Assignment?.NodeId == node || i.Ranks?.Any(r => r.NodeId == node) == true);
}
