using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Orchestrator.Core.Reliability;
using Orchestrator.Core.Specs;
using Orchestrator.Grains;
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
            catch (Exception e) { log.LogError(e, "Array {Array}: its runner ended unexpectedly; the next reconcile runs its members again", arrayId); }
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
        var training = JobSpecParser.Parse(accepted[0].Reply.SpecJson).Model.Type == ModelType.Dlrm
            ? RecommendationRunner.Run(_grains, accepted[0].Channel, accepted[0].Reply)
            : Task.Factory.StartNew(() => Train(accepted), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        try { await training; }
        catch (Exception e)
        {
            _log.LogError(e, "Array {Array} failed", ArrayId);
            foreach (var (c, _) in accepted) c.End(MemberOutcome.Failed(Describe(e)));
        }
        await Task.WhenAll(reporting);
    }

    void Train(IReadOnlyList<(MemberChannel Channel, StartReply Reply)> members)
    {
        var specs = members.Select(m => JobSpecParser.Parse(m.Reply.SpecJson)).ToList();
        var data = FashionMnist.Load(specs[0].Data.Path);
        using var trainer = new ArrayTrainer(specs, data, members.Select(m => m.Channel.JobId).ToList());
        var channels = members.ToDictionary(m => m.Channel.JobId, m => m.Channel);
        foreach (var (channel, reply) in members)
        {
            if (reply.Checkpoint is not { } cp) continue;
            trainer.Restore(trainer.Members.ToList().FindIndex(m => m.Id == channel.JobId), cp.Data);
        }
        var batch = specs[0].Train.BatchSize;
        var clock = Stopwatch.StartNew();
        var evaluating = new Stopwatch();
        var window = Stopwatch.StartNew();
        var firstStep = trainer.Members.ToDictionary(m => m.Id, m => m.Step);
        var accuracy = new Dictionary<string, double>();
        long windowSteps = 0;
        double stepsPerSecond = 0;

        while (trainer.Width > 0)
        {
            var leaving = new List<string>();
            for (int k = 0; k < trainer.Width; k++)
            {
                var m = trainer.Members[k];
                if (channels[m.Id].StopReason is { } why)
                {
                    // A preempted member leaves a checkpoint of this very step, so no work is lost.
                    if (channels[m.Id].YieldRequested) channels[m.Id].Post(new JobCheckpoint(m.Step, trainer.Checkpoint(k), DateTime.UtcNow));
                    channels[m.Id].End(MemberOutcome.Stopped(why));
                    leaving.Add(m.Id);
                }
            }
            trainer.Remove(leaving);
            if (trainer.Width == 0) break;

            var losses = trainer.Step();
            windowSteps++;
            if (window.Elapsed.TotalSeconds >= 1)
            {
                stepsPerSecond = windowSteps / window.Elapsed.TotalSeconds;
                windowSteps = 0;
                window.Restart();
            }
            leaving.Clear();
            var atBoundary = trainer.Members.Any(m => m.Step % m.Plan.StepsPerEpoch == 0 || m.Done);
            evaluating.Start();
            var evaluated = atBoundary ? trainer.Evaluate() : null;
            evaluating.Stop();
            for (int k = 0; k < trainer.Width; k++)
            {
                var m = trainer.Members[k];
                var channel = channels[m.Id];
                if (!float.IsFinite(losses[k]))
                {
                    channel.End(MemberOutcome.Failed(new JobFailure(FailureCause.NonFiniteLoss, $"loss {losses[k]}; lower train.lr (now {m.Spec.Train.Lr})", m.Step)));
                    leaving.Add(m.Id);
                    continue;
                }
                var boundary = m.Step % m.Plan.StepsPerEpoch == 0 || m.Done;
                if (boundary) accuracy[m.Id] = evaluated![k];
                if (boundary || windowSteps == 0)
                {
                    channel.Post(new JobProgress(m.Step, m.Plan.TotalSteps, m.TrainingEpoch, losses[k],
                        accuracy.TryGetValue(m.Id, out var a) ? a : null, stepsPerSecond * batch, DateTime.UtcNow));
                }
                if (m.Done)
                {
                    // Throughput while training: test-set evaluations are not training time.
                    var seconds = clock.Elapsed.TotalSeconds;
                    var throughput = (m.Step - firstStep[m.Id]) * batch / Math.Max(1e-9, seconds - evaluating.Elapsed.TotalSeconds);
                    channel.End(MemberOutcome.Succeeded(new JobResult(accuracy[m.Id], losses[k], m.Step, m.Plan.TrainingEpochs, seconds, throughput)));
                    leaving.Add(m.Id);
                }
                else if (m.Step % m.Spec.Train.CheckpointEvery == 0)
                {
                    channel.Post(new JobCheckpoint(m.Step, trainer.Checkpoint(k), DateTime.UtcNow));
                }
            }
            trainer.Remove(leaving);
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
