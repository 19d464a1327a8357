using System.Diagnostics;
using Orchestrator.Core;
using Orchestrator.Core.Recommendation;
using Orchestrator.Worker.Training;

namespace Orchestrator.Worker.Recommendation;

/// <summary>
/// Trains a recommendation (DLRM) job on this worker: the dense MLPs here, the embedding rows in the job's shard
/// grains (<see cref="ShardedEmbeddingStore"/>). The file's first <c>data.testExamples</c> examples are held out; the
/// rest are read in file order, batch by batch, every training epoch. It trains under the training loop like an array
/// member: progress about once a second, test metrics at each training epoch's end, dense checkpoints every <c>train.checkpointEvery</c> steps.
/// </summary>
public static class RecommendationRunner
{
    public static async Task Run(IGrainFactory grains, MemberChannel channel, StartReply reply)
    {
        var spec = JobSpecJson.Read(reply.SpecJson, new SpecValidationOptions { CheckFiles = false });
        var (dlrmModel, store) = OpenModel(grains, spec, reply.Shards, channel.Assignment.AssignmentEpoch);
        await store.Fence(); // a worker that ran this job before (and may thaw) can no longer write its rows
        using var dlrm = dlrmModel;
        if (await channel.ReadCheckpoint(reply) is { } state) dlrm.RestoreDense(state);
        using var data = new CriteoCursor(spec.Data.Path, dlrm.Shape.TableRows);
        var session = new RecommendationSession(grains, channel, spec, dlrm, store, data);
        await new TrainingLoop(session, spec.Train.CheckpointEvery).Run(CancellationToken.None);
    }

    /// <summary>
    /// A recommendation job as the training loop drives it. The file's first <c>data.testExamples</c> examples are
    /// held out; the rest are read in file order, batch by batch, every training epoch (the step says where, so a
    /// resumed or rolled-back job seeks back). With the checkpoint baseline, every shard checkpoints each interval and a
    /// shard that came back from its checkpoint rolls the whole job back to it.
    /// </summary>
    sealed class RecommendationSession : TrainingSession
    {
        readonly IGrainFactory _grains;
        readonly JobSpec _spec;
        readonly DlrmTrainer _dlrm;
        readonly ShardedEmbeddingStore _store;
        readonly CriteoCursor _data;
        readonly List<CriteoExample> _test;
        readonly TrainingPlan _plan;
        readonly List<MemberChannel> _members;
        /// <summary>Checkpoint baseline: the dense state at the shards' last checkpoints, to roll back together with them.</summary>
        readonly List<(long Step, byte[] State)> _dense;

        public RecommendationSession(IGrainFactory grains, MemberChannel channel, JobSpec spec, DlrmTrainer dlrm, ShardedEmbeddingStore store, CriteoCursor data)
        {
            (_grains, _spec, _dlrm, _store, _data, _members) = (grains, spec, dlrm, store, data, [channel]);
            _test = data.Read(0, spec.Data.TestExamples);
            _plan = TrainingPlan.For(spec.Train, CriteoFormat.Count(spec.Data.Path) - _test.Count);
            if (CriteoFormat.Count(spec.Data.Path) - _test.Count < spec.Train.BatchSize)
                throw new InvalidDataException($"{spec.Data.Path} holds no full batch of {spec.Train.BatchSize} training examples after its {_test.Count} test examples");
            _dense = [(dlrm.Step, dlrm.CaptureDense())];
        }

        MemberChannel Channel => _members.Count > 0 ? _members[0] : throw new InvalidOperationException("the job has left");
        public override IReadOnlyList<MemberChannel> Members => _members;
        public override int SamplesPerStep => _spec.Train.BatchSize;
        public override long Step(int member) => _dlrm.Step;
        public override long TotalSteps(int member) => _plan.TotalSteps;
        public override int TrainingEpoch(int member) => (int)(_dlrm.Step / _plan.StepsPerEpoch);
        public override bool Done(int member) => _dlrm.Step >= _plan.TotalSteps;
        public override int CompletedTrainingEpochs(int member) => (int)((_dlrm.Step + _plan.StepsPerEpoch - 1) / _plan.StepsPerEpoch);
        public override byte[] Checkpoint(int member) => _dlrm.CaptureDense();
        public override void Leave(IReadOnlyCollection<int> members) => _members.Clear();
        public override string NonFiniteAdvice(int member) => $"lower train.lr (now {_spec.Train.Lr}) or embedding.lr";

        public override async Task<TestMetrics[]> Evaluate(CancellationToken ct)
        {
            var (logLoss, auc, accuracy) = await _dlrm.Evaluate(_test);
            return [new TestMetrics(accuracy, auc, logLoss)];
        }

        public override async Task<float[]?> TrainStep(CancellationToken ct)
        {
            var batch = _spec.Train.BatchSize;
            var examples = _data.Read(_test.Count + _dlrm.Step % _plan.StepsPerEpoch * batch, batch);
            try
            {
                return [await _dlrm.TrainStep(examples, ct)];
            }
            catch (ShardRolledBackException e)
            {
                await RollBack(e);
                return null;
            }
        }

        public override JobResult Finish(int member, JobResult result)
        {
            // One-way, so the job records it beside its result.
            if (_data.Skipped > 0)
                _ = _grains.GetGrain<IJobGrain>(Channel.JobId).Note(JobEvent.MalformedDataSkipped(Channel.Assignment.NodeId, _spec.Data.Path, _data.Skipped, _data.FirstProblem));
            return result;
        }

        public override async Task<bool> AfterStep(CancellationToken ct)
        {
            var interval = _store.Config.CheckpointInterval;
            if (interval > 0 && _dlrm.Step % interval == 0 && _dlrm.Step < _plan.TotalSteps)
            {
                await _store.Checkpoint(_dlrm.Step, ct);
                _dense.Add((_dlrm.Step, _dlrm.CaptureDense()));
                if (_dense.Count > 3) _dense.RemoveAt(0);
            }
            return true;
        }

        /// <summary>Checkpoint baseline: a shard came back from its last checkpoint, so every shard and the dense model go
        /// back to that step and the steps since are trained again.</summary>
        async Task RollBack(ShardRolledBackException e)
        {
            var clock = Stopwatch.StartNew();
            var at = _dlrm.Step;
            var saved = _dense.LastOrDefault(d => d.Step == e.Step);
            if (saved.State is null) throw new InvalidOperationException($"no dense checkpoint at step {e.Step} to roll back to ({e.Message})");
            await _store.Restore(e.Step);
            _dlrm.RestoreDense(saved.State);
            _dense.RemoveAll(d => d.Step > e.Step);
            await _grains.GetGrain<IJobGrain>(Channel.JobId).Note(JobEvent.RolledBack(Channel.Assignment.NodeId, at, e.Step, clock.Elapsed, e.Message));
        }
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
}
