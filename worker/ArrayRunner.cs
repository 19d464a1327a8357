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

    public ArrayRunner(IGrainFactory grains, string arrayId, IReadOnlyList<Assignment> members, ICheckpointStore checkpoints, ILogger log)
    {
        (ArrayId, _grains, _log) = (arrayId, grains, log);
        _channels = members.ToDictionary(m => m.JobId, m => new MemberChannel(grains, m, checkpoints, log));
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
        // From here every failure ends the members it concerns with a typed cause (and frees the device when the last
        // one leaves): a failure the runner let escape would run them again at the next reconcile, forever.
        var members = new List<Member>();
        foreach (var (channel, reply) in accepted)
        {
            // The silo validated the spec; whether its files exist is a question for this node, answered by loading them.
            try
            {
                var spec = JobSpecJson.Read(reply.SpecJson, new SpecValidationOptions { CheckFiles = false });
                // A recommendation job reads its dense checkpoint itself, beside its shards.
                var state = spec.Model.Type == ModelType.Dlrm ? null : await channel.ReadCheckpoint(reply);
                members.Add(new Member(channel, reply, spec, state));
            }
            catch (Exception e) { Fail([channel], e); }
        }
        if (members.Count > 0)
        {
            // A recommendation job is never fused: it trains alone, its embedding in shard grains.
            var training = members[0].Spec.Model.Type == ModelType.Dlrm
                ? RecommendationRunner.Run(_grains, members[0].Channel, members[0].Reply)
                : Task.Factory.StartNew(() => Train(members), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            try { await training; }
            catch (Exception e) { Fail(members.Select(m => m.Channel), e); }
        }
        await Task.WhenAll(reporting);
    }

    void Fail(IEnumerable<MemberChannel> members, Exception e)
    {
        _log.ArrayFailed(ArrayId, e);
        foreach (var c in members) c.End(MemberOutcome.Failed(Describe(e)));
    }

    sealed record Member(MemberChannel Channel, StartReply Reply, JobSpec Spec, byte[]? Checkpoint);

    static void Train(IReadOnlyList<Member> members)
    {
        var specs = members.Select(m => m.Spec).ToList();
        using var trainer = new ArrayTrainer(specs, FashionMnist.Load(specs[0].Data.Path), members.Select(m => m.Channel.JobId).ToList());
        for (int k = 0; k < members.Count; k++)
            if (members[k].Checkpoint is { } state) trainer.Restore(k, state);
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
        CheckpointUnreadableException => new(FailureCause.CheckpointUnreadable, e.Message),
        FileNotFoundException or InvalidDataException => new(FailureCause.InvalidData, e.Message),
        SpecValidationException => new(FailureCause.InvalidSpec, e.Message),
        OutOfMemoryException => new(FailureCause.OutOfMemory, "use a smaller batch size or model"),
        // libtorch's allocator failures reach .NET as ExternalException; its message is the only sign of which kind.
        System.Runtime.InteropServices.ExternalException when e.Message.Contains("out of memory", StringComparison.OrdinalIgnoreCase)
            => new(FailureCause.OutOfMemory, $"the device ran out of memory ({FirstLine(e.Message)}); use a smaller batch size or model"),
        EmbeddingShardLostException => new(FailureCause.EmbeddingLost, e.Message),
        _ => new(FailureCause.WorkerError, $"{e.GetType().Name}: {e.Message}"),
    };

    static string FirstLine(string text) => text.Split('\n', 2)[0].Trim();
}
