namespace Orchestrator.Grains;

/// <summary>A job's persisted state: what was submitted, where it is in its life, its time line, and for a
/// data-parallel job its ranks and membership.</summary>
[GenerateSerializer, Alias("job-state")]
public sealed class JobGrainState
{
    [Id(0)] public JobDefinition Definition { get; set; } = new();
    [Id(1)] public JobRun Run { get; set; } = new();
    [Id(2)] public JobTimeline Timeline { get; set; } = new();
    /// <summary>Data-parallel jobs: the placed ranks (in the membership or about to join).</summary>
    [Id(3)] public List<Assignment> Ranks { get; set; } = [];
    /// <summary>Data-parallel jobs: the membership.</summary>
    [Id(4)] public GangRecord? Gang { get; set; }
}

/// <summary>What was submitted, fixed for the job's life.</summary>
[GenerateSerializer, Alias("job-definition")]
public sealed class JobDefinition
{
    [Id(0)] public string SpecJson { get; set; } = "";
    [Id(1)] public string Name { get; set; } = "";
    [Id(2)] public string Owner { get; set; } = "";
    [Id(3)] public int Priority { get; set; }
    /// <summary>The model in a few words, for lists.</summary>
    [Id(4)] public string Model { get; set; } = "";
    [Id(5)] public long Sequence { get; set; }
    [Id(6)] public DateTime SubmittedAt { get; set; }
    [Id(7)] public int Devices { get; set; }
    [Id(8)] public string? FusionKey { get; set; }
    [Id(9)] public long MemoryBytes { get; set; }
    /// <summary>Data-parallel jobs: ranks at least and at most (0: not data-parallel).</summary>
    [Id(10)] public int MinRanks { get; set; }
    [Id(11)] public int MaxRanks { get; set; }
    /// <summary>Recommendation jobs: their embedding shards, resolved at submission.</summary>
    [Id(12)] public ShardConfig? Shards { get; set; }
    /// <summary>The submission that created the job (<see cref="JobSubmission.SubmissionId"/>), if it named one.</summary>
    [Id(13)] public string? SubmissionId { get; set; }

    public bool IsDataParallel => MaxRanks > 0;
}

/// <summary>Where the job is in its life.</summary>
[GenerateSerializer, Alias("job-run")]
public sealed class JobRun
{
    [Id(0)] public JobState State { get; set; }
    /// <summary>A single job's current placement (for a data-parallel job, its first rank as placed).</summary>
    [Id(1)] public Assignment? Assignment { get; set; }
    /// <summary>The newest assignment epoch the job accepted: an older placement is never accepted again.</summary>
    [Id(2)] public long HighestAssignmentEpoch { get; set; }
    [Id(3)] public JobProgress? Progress { get; set; }
    [Id(4)] public JobResult? Result { get; set; }
    [Id(5)] public JobFailure? Failure { get; set; }
    [Id(6)] public DateTime? StartedAt { get; set; }
    [Id(7)] public DateTime? EndedAt { get; set; }
    [Id(8)] public long? CheckpointStep { get; set; }
    [Id(9)] public int Recoveries { get; set; }
    /// <summary>Set while a preemption (for this gang) waits for the worker to hand back a checkpoint.</summary>
    [Id(10)] public string? PreemptedFor { get; set; }
    /// <summary>The silo of the latest activation; if that silo has left the cluster, the next activation is a recovery.</summary>
    [Id(11)] public string? LiveOn { get; set; }
    /// <summary>Why the cluster cannot run the job now, while it is Unschedulable.</summary>
    [Id(12)] public Unschedulable? Unschedulable { get; set; }
}

/// <summary>
/// A job's record for people and for its ETTR: its events (the oldest dropped past a limit), its phase marks (never
/// trimmed: a few per placement) and its training curve (thinned by half whenever it is full).
/// </summary>
[GenerateSerializer, Alias("job-timeline")]
public sealed class JobTimeline
{
    [Id(0)] public List<JobEvent> Events { get; set; } = [];
    [Id(1)] public int DroppedEvents { get; set; }
    [Id(2)] public List<JobMark> Marks { get; set; } = [];
    [Id(3)] public List<JobProgress> Curve { get; set; } = [];
    /// <summary>The failure category of the latest interruption, until training goes on again.</summary>
    [Id(4)] public FailureCategory? Interruption { get; set; }

    public void Add(JobEvent happened, int maxEvents)
    {
        Events.Add(happened);
        var excess = Events.Count - maxEvents;
        if (excess <= 0) return;
        Events.RemoveRange(0, excess);
        DroppedEvents += excess;
    }

    public void AddCurvePoint(JobProgress progress, int maxPoints)
    {
        if (Curve.Count >= maxPoints) Curve = Curve.Where((_, i) => i % 2 == 1).ToList(); // keeps the newest point, halves the density
        Curve.Add(progress);
    }

    /// <summary>Starts a phase now at <paramref name="step"/>; observes queue waits and recovery times as they end.</summary>
    public void Mark(RunPhase phase, long step)
    {
        var at = DateTime.UtcNow;
        if (Marks.Count > 0 && Marks[^1].Phase == phase && phase != RunPhase.Training) return;
        if (phase == RunPhase.Starting && Marks.LastOrDefault(m => m.Phase == RunPhase.Queued) is { } queued)
            OrchestratorMetrics.QueueWait.Observe((at - queued.At).TotalSeconds);
        if (phase == RunPhase.Training && Interruption is { } category)
        {
            var since = Marks.LastOrDefault(m => m.Phase == RunPhase.Stalled)?.At ?? Marks[^1].At;
            OrchestratorMetrics.Recovery.WithLabels(category.ToString()).Observe((at - since).TotalSeconds);
            Interruption = null;
        }
        Marks.Add(new JobMark(at, phase, step));
    }

    /// <summary>
    /// Training stopped without the job knowing when: it stalled at its last progress report (the time until now is
    /// the failure's detection), and from now it is in <paramref name="next"/>.
    /// </summary>
    public void Interrupted(RunPhase next, FailureCategory category, JobProgress? lastProgress)
    {
        Interruption = category;
        if (Marks.Count > 0 && Marks[^1].Phase == RunPhase.Training && lastProgress is { } p && p.At > Marks[^1].At)
            Marks.Add(new JobMark(p.At, RunPhase.Stalled, p.Step));
        Mark(next, lastProgress?.Step ?? 0);
    }

    public TimeAccount Account(long currentStep) =>
        TrainingTimeAccounting.Account(Marks.Select(m => m.ToPhaseMark()), DateTime.UtcNow, currentStep);
}

/// <summary>The membership of a data-parallel job, persisted with the job (see <see cref="Core.Collectives.ElasticMembership"/>).</summary>
[GenerateSerializer, Alias("gang-record")]
public sealed class GangRecord
{
    [Id(0)] public long MembershipEpoch { get; set; }
    [Id(1)] public List<GangSeat> Ranks { get; set; } = [];
    /// <summary>Ranks whose endpoint is up and who wait to join (or, before the gang forms, to form it).</summary>
    [Id(2)] public List<GangSeat> Waiting { get; set; } = [];
    [Id(3)] public long Step { get; set; }
    [Id(4)] public bool Formed { get; set; }
}

/// <summary>A rank in the membership: its assignment epoch and its data-plane endpoint.</summary>
[GenerateSerializer, Immutable, Alias("gang-seat")]
public sealed record GangSeat(long AssignmentEpoch, string Endpoint);

/// <summary>The job's checkpoints in the checkpoint store, newest first.</summary>
[GenerateSerializer, Alias("checkpoint-state")]
public sealed class CheckpointState
{
    [Id(1)] public List<CheckpointRef> Kept { get; set; } = [];

    public CheckpointRef? Newest => Kept.Count > 0 ? Kept[0] : null;
}
