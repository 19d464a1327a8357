using Orchestrator.Worker.Recommendation;
using Orchestrator.Worker.Training;

namespace Orchestrator.Worker;

/// <summary>
/// Runs one fused array (a single job is an array of width 1) on its device: a dedicated training thread steps
/// all members at once; members that finish, fail (non-finite loss) or are stopped leave between steps while
/// the others go on unchanged. Each member reports through its own <see cref="MemberChannel"/>.
/// </summary>
public sealed class ArrayRunner
{
    readonly IGrainFactory _grains;
    readonly ILogger _log;
    readonly Dictionary<string, MemberChannel> _channels;

    public ArrayRunner(IGrainFactory grains, string arrayId, IReadOnlyList<Assignment> members, ILogger log)
    {
        (ArrayId, _grains, _log) = (arrayId, grains, log);
        _channels = members.ToDictionary(m => m.JobId, m => new MemberChannel(grains, m, log));
        Completion = Task.Run(async () =>
        {
            try { await RunAsync(); }
            catch (Exception e) { log.ArrayRunnerEnded(arrayId, e); }
        });
    }

    public string ArrayId { get; }
    public Task Completion { get; }
    public IReadOnlyCollection<MemberChannel> Members => _channels.Values;

    public void Stop(string jobId, string reason)
    {
        if (_channels.TryGetValue(jobId, out var c)) c.RequestStop(reason);
    }

    public void StopAll(string reason, bool runAgainIfWanted = false)
    {
        foreach (var c in _channels.Values) c.RequestStop(reason, runAgainIfWanted);
    }

    async Task RunAsync()
    {
        var starts = await Task.WhenAll(_channels.Values.Select(async c => (Channel: c, Reply: await c.Start())));
        var accepted = starts.Where(s => s.Reply is not null).Select(s => (s.Channel, Reply: s.Reply!)).ToList();
        if (accepted.Count == 0) return;
        var reporting = accepted.Select(a => a.Channel.Run()).ToList();
        // A recommendation job is never fused: it trains alone, its embedding in shard grains.
        var training = JobSpecJson.Read(accepted[0].Reply.SpecJson).Model.Type == ModelType.Dlrm
            ? RecommendationRunner.Run(_grains, accepted[0].Channel, accepted[0].Reply)
            : Task.Factory.StartNew(() => Train(accepted), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        try { await training; }
        catch (Exception e)
        {
            _log.ArrayFailed(ArrayId, e);
            foreach (var (c, _) in accepted) c.End(MemberOutcome.Failed(Describe(e)));
        }
        await Task.WhenAll(reporting);
    }

    static void Train(IReadOnlyList<(MemberChannel Channel, StartReply Reply)> members)
    {
        var specs = members.Select(m => JobSpecJson.Read(m.Reply.SpecJson)).ToList();
        using var trainer = new ArrayTrainer(specs, FashionMnist.Load(specs[0].Data.Path), members.Select(m => m.Channel.JobId).ToList());
        for (int k = 0; k < members.Count; k++)
            if (members[k].Reply.Checkpoint is { } cp) trainer.Restore(k, cp.Data);
        // Every step of an array is synchronous: the loop runs on this thread (TorchSharp's dispose scopes belong to one).
        new TrainingLoop(new ArraySession(trainer, members.Select(m => m.Channel).ToList()), specs[0].Train.CheckpointEvery)
            .Run(CancellationToken.None).GetAwaiter().GetResult();
    }

    /// <summary>A fused array (or a job alone) as the training loop drives it.</summary>
    sealed class ArraySession(ArrayTrainer trainer, List<MemberChannel> members) : TrainingSession
    {
        public override IReadOnlyList<MemberChannel> Members => members;
        public override int SamplesPerStep => trainer.BatchSize;
        public override long Step(int member) => trainer.Members[member].Step;
        public override long TotalSteps(int member) => trainer.Members[member].Plan.TotalSteps;
        public override int TrainingEpoch(int member) => trainer.Members[member].TrainingEpoch;
        public override bool Done(int member) => trainer.Members[member].Done;
        public override int CompletedTrainingEpochs(int member) => trainer.Members[member].Plan.TrainingEpochs;
        public override Task<float[]?> TrainStep(CancellationToken ct) => Task.FromResult<float[]?>(trainer.Step());
        public override Task<TestMetrics[]> Evaluate(CancellationToken ct) => Task.FromResult(trainer.Evaluate().Select(a => new TestMetrics(a)).ToArray());
        public override byte[] Checkpoint(int member) => trainer.Checkpoint(member);
        public override string NonFiniteAdvice(int member) => $"lower train.lr (now {trainer.Members[member].Spec.Train.Lr})";

        public override void Leave(IReadOnlyCollection<int> leaving)
        {
            trainer.Remove(leaving.Select(k => trainer.Members[k].Id).ToList());
            foreach (var k in leaving.OrderDescending()) members.RemoveAt(k);
        }
    }

    /// <summary>The cause of a training run that threw.</summary>
    internal static JobFailure Describe(Exception e) => e switch
    {
        FileNotFoundException or InvalidDataException => new(FailureCause.InvalidData, e.Message),
        SpecValidationException => new(FailureCause.InvalidSpec, e.Message),
        OutOfMemoryException => new(FailureCause.OutOfMemory, "use a smaller batch size or model"),
        EmbeddingShardLostException => new(FailureCause.EmbeddingLost, e.Message),
        _ => new(FailureCause.WorkerError, $"{e.GetType().Name}: {e.Message}"),
    };
}
