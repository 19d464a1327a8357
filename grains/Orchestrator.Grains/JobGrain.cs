using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orchestrator.Core.Fusion;
using Orchestrator.Core.Reliability;
using Orchestrator.Core.Specs;

namespace Orchestrator.Grains;

[GenerateSerializer, Alias("job-state")]
public sealed class JobGrainState
{
    [Id(0)] public string SpecJson { get; set; } = "";
    [Id(1)] public string Name { get; set; } = "";
    [Id(2)] public string Owner { get; set; } = "";
    [Id(3)] public int Priority { get; set; }
    [Id(4)] public string Model { get; set; } = "";
    [Id(5)] public JobState State { get; set; }
    [Id(6)] public long Sequence { get; set; }
    [Id(7)] public Assignment? Assignment { get; set; }
    [Id(8)] public JobProgress? Progress { get; set; }
    [Id(9)] public JobResult? Result { get; set; }
    [Id(10)] public string? FailureReason { get; set; }
    [Id(11)] public DateTime SubmittedAt { get; set; }
    [Id(12)] public DateTime? StartedAt { get; set; }
    [Id(13)] public DateTime? EndedAt { get; set; }
    [Id(14)] public List<JobEvent> Events { get; set; } = [];
    [Id(15)] public int DroppedEvents { get; set; }
    [Id(16)] public long? CheckpointStep { get; set; }
    [Id(17)] public int Recoveries { get; set; }
    /// <summary>The silo of the latest activation; if that silo has left the cluster, the next activation is a recovery.</summary>
    [Id(18)] public string? LiveOn { get; set; }
    [Id(19)] public long HighestEpoch { get; set; }
    [Id(20)] public int Devices { get; set; }
    [Id(21)] public string? FusionKey { get; set; }
    [Id(22)] public long MemoryBytes { get; set; }
    /// <summary>Data-parallel jobs: the placed ranks (in the membership or about to join) and the membership.</summary>
    [Id(23)] public List<Assignment> Ranks { get; set; } = [];
    [Id(24)] public GangRecord? Gang { get; set; }
    [Id(25)] public int MinRanks { get; set; }
    [Id(26)] public int MaxRanks { get; set; }
    /// <summary>Set while a preemption waits for the worker to hand back a checkpoint.</summary>
    [Id(27)] public string? PreemptReason { get; set; }
    /// <summary>Recommendation jobs: their embedding shards, resolved at submission.</summary>
    [Id(28)] public ShardConfig? Shards { get; set; }
    /// <summary>The job's phase marks (never trimmed: a few per placement), the source of its ETTR.</summary>
    [Id(29)] public List<JobMark> Marks { get; set; } = [];
    /// <summary>Progress reports, thinned by half whenever <see cref="OrchestratorOptions.MaxCurvePoints"/> is reached.</summary>
    [Id(30)] public List<JobProgress> Curve { get; set; } = [];
    /// <summary>The failure category of the latest interruption, until training goes on again.</summary>
    [Id(31)] public string? Interruption { get; set; }
}

[GenerateSerializer, Alias("checkpoint-state")]
public sealed class CheckpointState
{
    [Id(0)] public JobCheckpoint? Checkpoint { get; set; }
}

public sealed partial class JobGrain(
    [PersistentState("job", StorageNames.State)] IPersistentState<JobGrainState> store,
    [PersistentState("checkpoint", StorageNames.Checkpoints)] IPersistentState<CheckpointState> checkpoint,
    IClusterMembershipService membership,
    IOptions<OrchestratorOptions> options,
    ILogger<JobGrain> logger) : Grain, IJobGrain
{
    static readonly TimeSpan ProgressWriteInterval = TimeSpan.FromSeconds(3);
    JobGrainState S => store.State;
    string JobId => this.GetPrimaryKeyString();
    DateTime _lastProgressWrite;

    string Silo => GrainContext.Address.SiloAddress!.ToParsableString();

    public override async Task OnActivateAsync(CancellationToken ct)
    {
        if (!store.RecordExists || S.State.IsTerminal() || S.LiveOn == Silo) return;
        if (S.LiveOn is { } previous && PreviousSiloLeft(previous))
        {
            AddEvent("job grain", $"recovered from storage on silo {Silo} after silo {previous} left the cluster; state {S.State}, last saved progress at step {S.Progress?.Step ?? 0}, checkpoint at step {S.CheckpointStep?.ToString() ?? "none"}");
            logger.LogWarning("Job {JobId} recovered from storage after silo {Silo} was lost", JobId, previous);
        }
        S.LiveOn = Silo;
        await store.WriteStateAsync(ct);
    }

    bool PreviousSiloLeft(string previous)
    {
        var address = SiloAddress.FromParsableString(previous);
        return membership.CurrentSnapshot.GetSiloStatus(address) is SiloStatus.Dead or SiloStatus.None;
    }

    public async Task<JobInfo> Submit(JobSubmission submission)
    {
        if (store.RecordExists)
        {
            if (S.SpecJson == submission.SpecJson) return Info();
            throw new ArgumentException($"job id '{JobId}' already exists with a different spec; submit under another id");
        }
        JobSpec spec;
        try { spec = JobSpecParser.Parse(submission.SpecJson, new SpecValidationOptions { CheckFiles = false }); }
        catch (SpecValidationException e) { throw new ArgumentException($"invalid job spec:{Environment.NewLine}{e.Message}"); }

        (ShardConfig Config, string Description)? embedding = spec.Embedding is null ? null
            : EmbeddingShards.Resolve(JobId, spec, membership.CurrentSnapshot.Members.Values.Count(m => m.Status == SiloStatus.Active));
        var index = GrainFactory.GetGrain<IJobIndexGrain>(SchedulerKeys.Cluster);
        S.SpecJson = submission.SpecJson;
        S.Shards = embedding?.Config;
        S.Name = spec.Name;
        S.Owner = spec.Owner;
        S.Priority = spec.Priority;
        S.Devices = spec.Resources.Devices;
        if (spec.DataParallel is { } dp)
        {
            (S.MinRanks, S.MaxRanks, S.Devices) = (dp.MinWorkers, dp.MaxWorkers, dp.MinWorkers);
            S.Gang = new GangRecord();
        }
        S.FusionKey = FusionPlanning.Key(spec);
        S.MemoryBytes = FusionPlanning.EstimateMemberBytes(spec);
        S.Model = spec.Model.Type switch
        {
            ModelType.Mlp => $"mlp {string.Join("-", spec.Model.Hidden)}",
            ModelType.Cnn => $"cnn {string.Join("-", spec.Model.Channels)} fc{spec.Model.FcHidden}",
            _ => $"dlrm dim {spec.Model.Dim} {string.Join("-", spec.Model.Hidden)}|{string.Join("-", spec.Model.Top ?? [])}",
        };

        S.State = JobState.Pending;
        S.SubmittedAt = DateTime.UtcNow;
        S.LiveOn = Silo;
        S.Sequence = await index.Add(JobId);
        Mark(RunPhase.Queued);
        var gang = spec.DataParallel is { } d ? $", data-parallel on {d.MinWorkers}-{d.MaxWorkers} ranks combining gradients by {d.Gradients.ToString().ToLowerInvariant()}" : "";
        AddEvent(submission.SubmittedBy, $"submitted: {S.Model}, {spec.Train.Optimizer.ToString().ToLowerInvariant()} lr {spec.Train.Lr}, priority {spec.Priority}{gang}");
        if (embedding is { } shards) AddEvent("job grain", shards.Description);
        await SaveAndPublish();
        if (!submission.DeferEnqueue) await GrainFactory.GetGrain<ISchedulerGrain>(SchedulerKeys.Cluster).Enqueue(Queued());
        return Info();
    }

    public Task<JobHistory> GetHistory()
    {
        EnsureExists();
        return Task.FromResult(new JobHistory(S.Marks.ToList(), S.Curve.ToList()));
    }

    public Task<JobInfo> GetInfo()
    {
        EnsureExists();
        return Task.FromResult(Info());
    }

    public async Task Note(string who, string what)
    {
        if (!store.RecordExists) return;
        AddEvent(who, what);
        await SaveAndPublish();
    }

    public Task<QueuedJob?> GetQueueEntry() =>
        Task.FromResult(store.RecordExists && S.State.IsQueued() ? Queued() : null);

    public Task<IReadOnlyList<JobEvent>> GetEvents()
    {
        EnsureExists();
        return Task.FromResult<IReadOnlyList<JobEvent>>(S.Events.ToList());
    }

    public async Task<JobInfo> Cancel(string who)
    {
        EnsureExists();
        if (S.State.IsTerminal()) return Info();
        if (S.State.IsQueued())
            await GrainFactory.GetGrain<ISchedulerGrain>(SchedulerKeys.Cluster).Withdraw(JobId);
        await ReleaseNode();
        S.State = JobState.Cancelled;
        S.EndedAt = DateTime.UtcNow;
        Mark(RunPhase.Ended);
        AddEvent(who, "cancelled");
        await SaveAndPublish();
        return Info();
    }

    public async Task<bool> MarkScheduled(Assignment a)
    {
        // Only a waiting job can be placed: a second placement (a duplicate scheduler activation, a retried
        // pass) is refused, so one job never runs in two places.
        if (!store.RecordExists || IsDataParallel || !S.State.IsQueued() || a.Epoch <= S.HighestEpoch) return false;
        S.HighestEpoch = a.Epoch;
        S.Assignment = a;
        S.State = JobState.Scheduled;
        Mark(RunPhase.Starting);
        var array = a.ArrayWidth > 1 ? $" in fused array {a.ArrayId} of {a.ArrayWidth} jobs" : "";
        AddEvent("scheduler", $"placed on {a.NodeId}/{a.Device}{array} (epoch {a.Epoch}){ResumeNote()}");
        await SaveAndPublish();
        return true;
    }

    public async Task<QueuedJob?> Unschedule(long epoch, string reason)
    {
        if (IsDataParallel) return IsCurrent(epoch) ? await RemoveRank(epoch, "scheduler", $"placement not taken: {reason}") : null;
        if (!IsCurrent(epoch) || S.State != JobState.Scheduled) return null;
        S.Assignment = null;
        S.State = S.Recoveries > 0 ? JobState.Recovering : JobState.Pending;
        Mark(RunPhase.Queued);
        AddEvent("scheduler", $"placement not taken: {reason}; requeued");
        await SaveAndPublish();
        return Queued();
    }

    public async Task<QueuedJob?> MarkLost(long epoch, string reason)
    {
        if (!IsCurrent(epoch) || S.State.IsTerminal()) return null;
        if (IsDataParallel) return await RemoveRank(epoch, "scheduler", $"lost its node: {reason}");
        S.Assignment = null;
        S.State = JobState.Recovering;
        S.Recoveries++;
        Interrupted(RunPhase.Queued, FailureCategory.NodeLost);
        AddEvent("scheduler", $"lost its node: {reason}; requeued{ResumeNote()}");
        await SaveAndPublish();
        return Queued();
    }

    public async Task<StartReply> Start(long epoch, string nodeId)
    {
        if (Refusal(epoch) is { } why) return new StartReply(false, why.Reason, "", null);
        if (IsDataParallel) return new StartReply(false, "a rank of a data-parallel job starts with JoinGang", "", null);
        if (S.State == JobState.Scheduled)
        {
            S.State = JobState.Running;
            S.StartedAt ??= DateTime.UtcNow;
            Mark(RunPhase.Training, checkpoint.State.Checkpoint?.Step ?? 0);
            AddEvent(nodeId, checkpoint.State.Checkpoint is { } cp ? $"started; resuming from checkpoint at step {cp.Step}" : "started from step 0");
            await SaveAndPublish();
        }
        return new StartReply(true, null, S.SpecJson, checkpoint.State.Checkpoint, Shards: S.Shards);
    }

    public async Task<WorkAck> ReportProgress(long epoch, JobProgress progress)
    {
        if (Refusal(epoch) is { } stop) return stop;
        if (S.PreemptReason is { } preempted) return new WorkAck(false, preempted, Yield: true);
        var epochEnded = progress.TestAccuracy is not null && progress.Epoch != S.Progress?.Epoch;
        if (S.Progress is { } previous && progress.Step > previous.Step && progress.At > previous.At)
            OrchestratorMetrics.StepTime.Observe((progress.At - previous.At).TotalSeconds / (progress.Step - previous.Step));
        S.Progress = progress;
        AddCurvePoint(progress);
        if (epochEnded) AddEvent(Reporter(epoch), $"epoch {progress.Epoch} done at step {progress.Step}: test accuracy {progress.TestAccuracy:F4}, loss {progress.Loss:F4}");
        // Written at every report (about one a second): a reader after a failover never sees the step go back.
        await SaveAndPublish();
        return WorkAck.Go;
    }

    public async Task<WorkAck> SaveCheckpoint(long epoch, JobCheckpoint cp)
    {
        if (Refusal(epoch) is { } stop) return stop;
        if (cp.Step <= (S.CheckpointStep ?? -1)) return WorkAck.Go;
        checkpoint.State.Checkpoint = cp;
        await checkpoint.WriteStateAsync();
        S.CheckpointStep = cp.Step;
        await SaveAndPublish();
        return WorkAck.Go;
    }

    public async Task Preempt(string reason)
    {
        if (!store.RecordExists || IsDataParallel || S.State is not (JobState.Scheduled or JobState.Running) || S.PreemptReason is not null) return;
        S.PreemptReason = reason;
        AddEvent("scheduler", $"{reason}: checkpointing, then back to the queue");
        await SaveAndPublish();
    }

    public async Task<WorkAck> Yield(long epoch, JobCheckpoint cp)
    {
        if (Refusal(epoch) is { } stop) return stop;
        if (cp.Step > (S.CheckpointStep ?? -1))
        {
            checkpoint.State.Checkpoint = cp;
            await checkpoint.WriteStateAsync();
            S.CheckpointStep = cp.Step;
        }
        var node = Reporter(epoch);
        await ReleaseNode();
        S.Assignment = null;
        S.PreemptReason = null;
        S.State = S.Recoveries > 0 ? JobState.Recovering : JobState.Pending;
        Mark(RunPhase.Queued, cp.Step);
        S.Interruption = nameof(FailureCategory.Preemption);
        AddEvent(node, $"preempted at step {cp.Step}: checkpoint saved, requeued");
        await SaveAndPublish();
        await IncidentLogGrain.Of(GrainFactory).Record(new Incident(DateTime.UtcNow, nameof(Core.Reliability.FailureCategory.Preemption), $"preempted at step {cp.Step}", node, JobId));
        await GrainFactory.GetGrain<ISchedulerGrain>(SchedulerKeys.Cluster).Enqueue(Queued());
        return WorkAck.Stop("preempted");
    }

    public async Task<WorkAck> Complete(long epoch, JobResult result)
    {
        if (Refusal(epoch) is { } stop) return stop;
        var node = Reporter(epoch);
        await ReleaseNode();
        S.State = JobState.Succeeded;
        S.Result = result;
        S.EndedAt = DateTime.UtcNow;
        Mark(RunPhase.Ended, result.Steps);
        AddEvent(node, $"succeeded: test accuracy {result.TestAccuracy:F4} after {result.Steps} steps ({result.Epochs} epochs, {result.TrainingSeconds:F1} s training){(result.Auc is { } auc ? $", AUC {auc:F4}, log loss {result.LogLoss:F4}, longest step {result.LongestStepSeconds:F2} s" : "")}{(result.Split is { } split ? $"; {split}" : "")}");
        await SaveAndPublish();
        return WorkAck.Go;
    }

    public async Task<WorkAck> Fail(long epoch, string reason)
    {
        if (Refusal(epoch) is { } stop) return stop;
        var node = Reporter(epoch);
        await ReleaseNode();
        S.State = JobState.Failed;
        S.FailureReason = reason;
        S.EndedAt = DateTime.UtcNow;
        Mark(RunPhase.Ended);
        AddEvent(node, $"failed: {reason}");
        await SaveAndPublish();
        await IncidentLogGrain.Of(GrainFactory).Record(new Incident(DateTime.UtcNow, Core.Reliability.FailureTaxonomy.Classify(reason).ToString(), $"job failed: {reason}", node, JobId));
        return WorkAck.Go;
    }

    bool IsCurrent(long epoch) => store.RecordExists && (IsDataParallel ? S.Ranks.Any(r => r.Epoch == epoch) : S.Assignment is { } a && a.Epoch == epoch);

    /// <summary>Who speaks for the job in events: its node, or for a data-parallel job the rank's node.</summary>
    string Reporter(long epoch) => (S.Ranks.FirstOrDefault(r => r.Epoch == epoch) ?? S.Assignment)?.NodeId ?? "worker";

    /// <summary>Fencing: only the holder of the current assignment may act for the job.</summary>
    WorkAck? Refusal(long epoch)
    {
        if (!store.RecordExists) return WorkAck.Stop($"job {JobId} does not exist");
        if (S.State == JobState.Cancelled) return WorkAck.Stop("the job was cancelled");
        if (S.State.IsTerminal()) return WorkAck.Stop($"the job already ended ({S.State})");
        if (!IsCurrent(epoch) && IsDataParallel)
            return WorkAck.Stop($"assignment epoch {epoch} is no longer a rank of the job (removed, or the job was placed again)");
        if (!IsCurrent(epoch))
            return WorkAck.Stop(S.Assignment is { } a
                ? $"assignment epoch {epoch} is stale: the job now runs on {a.NodeId} with epoch {a.Epoch}"
                : $"assignment epoch {epoch} is stale: the job is {S.State}");
        return null;
    }

    async Task ReleaseNode()
    {
        var held = S.Ranks.Concat(S.Assignment is { } a && !IsDataParallel ? [a] : []).ToList();
        if (held.Count == 0) return;
        foreach (var r in held) await GrainFactory.GetGrain<INodeGrain>(r.NodeId).Unassign(JobId, r.Epoch);
        S.Ranks.Clear();
        await GrainFactory.GetGrain<ISchedulerGrain>(SchedulerKeys.Cluster).Kick();
    }

    string ResumeNote() => S.CheckpointStep is { } step ? $"; will resume from checkpoint at step {step}" : "";

    void EnsureExists()
    {
        if (!store.RecordExists) throw new KeyNotFoundException($"no job '{JobId}'; list jobs with 'orch jobs'");
    }

    void AddEvent(string who, string what)
    {
        S.Events.Add(new JobEvent(DateTime.UtcNow, who, what));
        var excess = S.Events.Count - options.Value.MaxEventsPerJob;
        if (excess > 0)
        {
            S.Events.RemoveRange(0, excess);
            S.DroppedEvents += excess;
        }
    }

    /// <summary>Starts a phase now; <paramref name="step"/>: the step training resumes from, else the step reached.</summary>
    void Mark(RunPhase phase, long? step = null)
    {
        var at = DateTime.UtcNow;
        if (S.Marks.Count > 0 && S.Marks[^1].Phase == phase && phase != RunPhase.Training) return;
        if (phase == RunPhase.Starting && S.Marks.LastOrDefault(m => m.Phase == RunPhase.Queued) is { } queued)
            OrchestratorMetrics.QueueWait.Observe((at - queued.At).TotalSeconds);
        if (phase == RunPhase.Training && S.Interruption is { } category)
        {
            var since = S.Marks.LastOrDefault(m => m.Phase == RunPhase.Stalled)?.At ?? S.Marks[^1].At;
            OrchestratorMetrics.Recovery.WithLabels(category).Observe((at - since).TotalSeconds);
            S.Interruption = null;
        }
        S.Marks.Add(new JobMark(at, phase, step ?? S.Progress?.Step ?? 0));
    }

    /// <summary>
    /// Training stopped without the job knowing when: it stalled at its last progress report (the time until now is
    /// the failure's detection), and from now it is in <paramref name="next"/>.
    /// </summary>
    void Interrupted(RunPhase next, FailureCategory category)
    {
        S.Interruption = category.ToString();
        if (S.Marks.Count > 0 && S.Marks[^1].Phase == RunPhase.Training && S.Progress is { } p && p.At > S.Marks[^1].At)
            S.Marks.Add(new JobMark(p.At, RunPhase.Stalled, p.Step));
        Mark(next);
    }

    void AddCurvePoint(JobProgress progress)
    {
        if (S.Curve.Count >= options.Value.MaxCurvePoints)
            S.Curve = S.Curve.Where((_, i) => i % 2 == 1).ToList(); // keeps the newest point, halves the density
        S.Curve.Add(progress);
    }

    QueuedJob Queued() => IsDataParallel
        ? new(JobId, S.Priority, S.Sequence, S.MinRanks, null, S.MemoryBytes, Gang: true, MaxDevices: S.MaxRanks)
        : new(JobId, S.Priority, S.Sequence, S.Devices, S.FusionKey, S.MemoryBytes);

    JobInfo Info() => new(JobId, S.Name, S.Owner, S.State, S.Priority, S.Model, S.SubmittedAt, S.StartedAt, S.EndedAt,
        S.Assignment, S.Progress, S.Result, S.FailureReason, S.CheckpointStep, S.Recoveries, Silo, IsDataParallel ? View(null) : null, IsDataParallel ? S.Ranks.ToList() : null, S.Shards,
        JobTime.From(TrainingTimeAccounting.Account(S.Marks.Select(m => m.ToPhaseMark()), DateTime.UtcNow, S.Progress?.Step ?? 0)));

    async Task SaveAndPublish()
    {
        await store.WriteStateAsync();
        _lastProgressWrite = DateTime.UtcNow;
        await GrainFactory.GetGrain<IJobIndexGrain>(SchedulerKeys.Cluster).Update(Info());
    }
}
