namespace Orchestrator.Grains;

[GenerateSerializer, Alias("job-index-state")]
public sealed class JobIndexState
{
    [Id(0)] public Dictionary<string, JobInfo?> Jobs { get; set; } = [];
    [Id(1)] public Dictionary<string, long> Sequences { get; set; } = [];
    [Id(2)] public long NextSequence { get; set; }
}

public sealed class JobIndexGrain([PersistentState("job-index", StorageNames.State)] IPersistentState<JobIndexState> store)
    : Grain, IJobIndexGrain
{
    static readonly TimeSpan FlushPeriod = TimeSpan.FromSeconds(1);
    bool _dirty;

    public override Task OnActivateAsync(CancellationToken ct)
    {
        // Progress-only updates are written behind on a timer; state changes are written through.
        this.RegisterGrainTimer(Flush, new GrainTimerCreationOptions(FlushPeriod, FlushPeriod) { KeepAlive = true });
        return Task.CompletedTask;
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken ct) => await Flush(ct);

    public async Task<long> Add(string jobId)
    {
        if (store.State.Sequences.TryGetValue(jobId, out var existing)) return existing;
        var seq = ++store.State.NextSequence;
        store.State.Sequences[jobId] = seq;
        store.State.Jobs[jobId] = null;
        await store.WriteStateAsync();
        _dirty = false;
        return seq;
    }

    public async Task Update(JobInfo info)
    {
        var previous = store.State.Jobs.GetValueOrDefault(info.JobId);
        store.State.Jobs[info.JobId] = info;
        if (previous is null || previous.State != info.State || previous.CheckpointStep != info.CheckpointStep)
        {
            await store.WriteStateAsync();
            _dirty = false;
        }
        else _dirty = true;
    }

    public Task<IReadOnlyList<JobInfo>> List() =>
        Task.FromResult<IReadOnlyList<JobInfo>>(store.State.Jobs.Values.OfType<JobInfo>()
            .OrderBy(j => store.State.Sequences.GetValueOrDefault(j.JobId)).ToList());

    public Task<bool> Contains(string jobId) => Task.FromResult(store.State.Sequences.ContainsKey(jobId));

    public async Task Remove(string jobId)
    {
        if (!store.State.Sequences.Remove(jobId)) return;
        store.State.Jobs.Remove(jobId);
        await store.WriteStateAsync();
        _dirty = false;
    }

    async Task Flush(CancellationToken ct)
    {
        if (!_dirty) return;
        _dirty = false;
        await store.WriteStateAsync(ct);
    }
}
