using System.Diagnostics;
using Orchestrator.Core.Recommendation;
using Orchestrator.Core.Reliability;
using Orchestrator.Core.Specs;
using Orchestrator.Grains;
using Orchestrator.Worker.Training;

namespace Orchestrator.Worker;

/// <summary>
/// Trains a recommendation (DLRM) job on this worker: the dense MLPs here, the embedding rows in the job's shard
/// grains (<see cref="ShardedEmbeddingStore"/>). The file's first <c>data.testExamples</c> examples are held out; the
/// rest are read in file order, batch by batch, every epoch. Reports like an array member: progress about once a
/// second, test metrics at each epoch end, dense checkpoints every <c>train.checkpointEvery</c> steps.
/// </summary>
public static class RecommendationRunner
{
    public static async Task Run(IGrainFactory grains, MemberChannel channel, StartReply reply)
    {
        var spec = JobSpecParser.Parse(reply.SpecJson);
        var (dlrmModel, store) = OpenModel(grains, spec, reply.Shards, channel.Assignment.AssignmentEpoch);
        await store.Fence(); // a worker that ran this job before (and may thaw) can no longer write its rows
        using var dlrm = dlrmModel;
        var tables = dlrm.Shape.TableRows;
        var config = store.Config;
        if (reply.Checkpoint is { } cp) dlrm.RestoreDense(cp.Data);
        // Checkpoint baseline: the dense state at the shards' last two checkpoints, to roll back together with them.
        var dense = new List<(long Step, byte[] State)> { (dlrm.Step, dlrm.CaptureDense()) };

        var batch = spec.Train.BatchSize;
        using var data = new CriteoCursor(spec.Data.Path, tables);
        var test = data.Read(0, spec.Data.TestExamples);
        var stepsPerEpoch = (CriteoFormat.Count(spec.Data.Path) - test.Count) / batch;
        if (stepsPerEpoch < 1) throw new InvalidDataException($"{spec.Data.Path} holds no full batch of {batch} training examples after its {test.Count} test examples");
        var total = spec.Train.Steps > 0 ? spec.Train.Steps : stepsPerEpoch * spec.Train.Epochs;
        var clock = Stopwatch.StartNew();
        var lastReport = TimeSpan.Zero;
        var firstStep = dlrm.Step;
        (double LogLoss, double Auc, double Accuracy)? metrics = null;
        float loss = float.NaN;
        double longest = 0;
        while (dlrm.Step < total)
        {
            if (channel.StopReason is { } why)
            {
                channel.End(MemberOutcome.Stopped(why));
                return;
            }
            // Batches in file order, every epoch; the step says where (a resumed or rolled-back job seeks back).
            var current = data.Read(test.Count + dlrm.Step % stepsPerEpoch * batch, batch);
            var stepClock = Stopwatch.StartNew();
            try
            {
                loss = await dlrm.TrainStep(current);
            }
            catch (ShardRolledBackException e)
            {
                await RollBack(grains, channel, store, dlrm, dense, e);
                continue;
            }
            finally
            {
                longest = Math.Max(longest, stepClock.Elapsed.TotalSeconds);
            }
            if (!float.IsFinite(loss))
            {
                channel.End(MemberOutcome.Failed(new JobFailure(FailureCause.NonFiniteLoss, $"loss {loss}; lower train.lr (now {spec.Train.Lr}) or embedding.lr", dlrm.Step)));
                return;
            }
            var epochEnded = dlrm.Step % stepsPerEpoch == 0 || dlrm.Step == total;
            if (epochEnded) metrics = await dlrm.Evaluate(test);
            if (epochEnded || clock.Elapsed - lastReport >= TimeSpan.FromSeconds(1))
            {
                lastReport = clock.Elapsed;
                channel.Post(new JobProgress(dlrm.Step, total, (int)(dlrm.Step / stepsPerEpoch), loss, metrics?.Accuracy,
                    (dlrm.Step - firstStep) * (double)batch / Math.Max(1e-9, clock.Elapsed.TotalSeconds), DateTime.UtcNow));
            }
            if (config.CheckpointInterval > 0 && dlrm.Step % config.CheckpointInterval == 0 && dlrm.Step < total)
            {
                await store.Checkpoint(dlrm.Step);
                dense.Add((dlrm.Step, dlrm.CaptureDense()));
                if (dense.Count > 3) dense.RemoveAt(0);
            }
            if (dlrm.Step % spec.Train.CheckpointEvery == 0 && dlrm.Step < total)
                channel.Post(new JobCheckpoint(dlrm.Step, dlrm.CaptureDense(), DateTime.UtcNow));
        }
        if (data.Skipped > 0)
            await grains.GetGrain<IJobGrain>(channel.JobId).Note(JobEvent.MalformedDataSkipped(channel.Assignment.NodeId, spec.Data.Path, data.Skipped, data.FirstProblem));
        var final = metrics ?? await dlrm.Evaluate(test);
        var seconds = clock.Elapsed.TotalSeconds;
        channel.End(MemberOutcome.Succeeded(new JobResult(final.Accuracy, loss, dlrm.Step, (int)((dlrm.Step + stepsPerEpoch - 1) / stepsPerEpoch), seconds,
            (dlrm.Step - firstStep) * (double)batch / seconds, Auc: final.Auc, LogLoss: final.LogLoss, LongestStepSeconds: longest)));
    }

    /// <summary>The job's DLRM, its embedding rows in the job's shard grains.</summary>
    public static (DlrmTrainer Model, ShardedEmbeddingStore Store) OpenModel(IGrainFactory grains, JobSpec spec, ShardConfig? shards, long writer = 0)
    {
        var config = shards ?? throw new InvalidOperationException("the job grain gave no shard configuration for a dlrm job");
        var tables = Enumerable.Repeat(spec.Model.TableRows, CriteoFormat.CategoricalFeatures).ToArray();
        var layout = new EmbeddingLayout(tables, spec.Model.Dim, config.Shards);
        var store = new ShardedEmbeddingStore(grains, config, layout, writer);
        return (new DlrmTrainer(new DlrmShape(spec.Model.Dim, tables, spec.Model.Hidden, spec.Model.Top ?? []), layout, store, spec.Train.Seed, spec.Train.Lr), store);
    }

    /// <summary>Checkpoint baseline: a shard came back from its last checkpoint, so every shard and the dense model go
    /// back to that step and the steps since are trained again.</summary>
    static async Task RollBack(IGrainFactory grains, MemberChannel channel, ShardedEmbeddingStore store, DlrmTrainer dlrm,
        List<(long Step, byte[] State)> dense, ShardRolledBackException e)
    {
        var clock = Stopwatch.StartNew();
        var at = dlrm.Step;
        var saved = dense.LastOrDefault(d => d.Step == e.Step);
        if (saved.State is null) throw new InvalidOperationException($"no dense checkpoint at step {e.Step} to roll back to ({e.Message})");
        await store.Restore(e.Step);
        dlrm.RestoreDense(saved.State);
        dense.RemoveAll(d => d.Step > e.Step);
        await grains.GetGrain<IJobGrain>(channel.JobId).Note(JobEvent.RolledBack(channel.Assignment.NodeId, at, e.Step, clock.Elapsed, e.Message));
    }
}
