using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.Logging;
using Orchestrator.Core.Collectives;
using Orchestrator.Core.Reliability;
using Orchestrator.Core.Specs;
using Orchestrator.Grains;
using Orchestrator.Worker.Training;
using Polly;

namespace Orchestrator.Worker;

/// <summary>
/// Runs one rank of a data-parallel job. It binds its data-plane endpoint once, joins the job's membership
/// through the job grain, and then, epoch after epoch: starts the transport of the membership, agrees with the
/// other ranks on the state to continue from (<see cref="IGangRank.AgreeOnState"/>), and trains, meeting
/// the job grain at every <see cref="SyncEvery"/>-th step boundary (where joiners are admitted). When a peer
/// fails or stalls, the rank reports it and waits for the grain's verdict, which is a new membership epoch:
/// without the failed rank, or the same ranks re-formed. Rank 0 reports progress, checkpoints and the result.
/// </summary>
public sealed class RankRunner
{
    /// <summary>Step boundaries at which all ranks meet the job grain; must be the same on every rank.</summary>
    public const int SyncEvery = 10;
    /// <summary>A job whose steps are skipped for non-finite gradients this many times in a row fails with that cause.</summary>
    public const int MaxNonFiniteSteps = 5;
    static readonly TimeSpan PollPeriod = TimeSpan.FromMilliseconds(250);
    static readonly TimeSpan ProgressPeriod = TimeSpan.FromSeconds(1);
    static readonly TimeSpan ReportAgainAfter = TimeSpan.FromMilliseconds(500);

    readonly IGrainFactory _grains;
    readonly IPAddress _address;
    readonly ILogger _log;
    readonly WorkerChaos _chaos;
    readonly MemberChannel _channel;
    readonly CancellationTokenSource _stop = new();
    readonly ResiliencePipeline _retry = Resilience.Retry(TimeSpan.FromSeconds(30));
    readonly ReceiveDeadline _deadline = ReceiveDeadline.Default();
    bool _refused;
    long _step;
    double _longestStep;
    int _nonFiniteInARow;

    public RankRunner(IGrainFactory grains, Assignment assignment, IPAddress dataPlaneAddress, WorkerChaos chaos, ILogger log)
    {
        (_grains, Assignment, _address, _chaos, _log) = (grains, assignment, dataPlaneAddress, chaos, log);
        _channel = new MemberChannel(grains, assignment, log);
        Completion = Task.Run(async () =>
        {
            try { await RunAsync(); }
            catch (Exception e) { log.LogError(e, "Job {Job} rank {Epoch}: the rank runner ended unexpectedly; the next reconcile runs it again", assignment.JobId, assignment.AssignmentEpoch); }
        });
    }

    public Assignment Assignment { get; }
    public Task Completion { get; }
    public long Step => Interlocked.Read(ref _step);
    public bool Ended => Completion.IsCompleted;

    /// <summary>True once the cluster knows how this rank ended (or refused it), so it must not run again here.</summary>
    public bool Settled => _refused || _channel.Settled;

    long Epoch => Assignment.AssignmentEpoch;
    IJobGrain Job => _grains.GetGrain<IJobGrain>(Assignment.JobId);

    public void Stop(string reason, bool runAgainIfWanted = false)
    {
        _channel.RequestStop(reason, runAgainIfWanted);
        _stop.Cancel();
    }

    async Task RunAsync()
    {
        await using var listener = RankListener.Bind(_address);
        var endpoint = new IPEndPoint(_address, listener.LocalEndpoint.Port).ToString();
        StartReply start;
        try
        {
            start = await _retry.ExecuteAsync(async _ => await Job.JoinGang(Epoch, Assignment.NodeId, endpoint));
        }
        catch (Exception e)
        {
            _log.LogWarning("Job {Job} rank {Epoch}: could not join ({Error}); the next reconcile tries again", Assignment.JobId, Epoch, e.Message);
            return;
        }
        if (start.Refused is { } refused)
        {
            _log.LogInformation("Job {Job} rank {Epoch} refused: {Reason}", Assignment.JobId, Epoch, refused.Message);
            _refused = true;
            await _grains.GetGrain<INodeGrain>(Assignment.NodeId).Unassign(Assignment.JobId, Epoch);
            return;
        }
        _log.LogInformation("Job {Job}: rank {Epoch} on {Device} serving its data plane at {Endpoint}", Assignment.JobId, Epoch, Assignment.Device, endpoint);
        var reporting = _channel.Run();
        try
        {
            await Train(start, listener);
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested || _channel.StopReason is not null)
        {
            _channel.End(MemberOutcome.Stopped(_channel.StopReason ?? "stopped"));
        }
        catch (Exception e)
        {
            _log.LogError(e, "Job {Job} rank {Epoch} failed", Assignment.JobId, Epoch);
            _channel.End(MemberOutcome.Failed(ArrayRunner.Describe(e)));
        }
        await reporting;
    }

    async Task Train(StartReply start, RankListener listener)
    {
        var spec = JobSpecParser.Parse(start.SpecJson);
        using var rank = OpenRank(spec, start);
        if (start.Checkpoint is { } cp) rank.RestoreState(cp.Data);
        var view = start.Gang!;
        // A running job's ranks are ahead of this one: it takes their state at its first agreement.
        var joining = view.Ranks.Count > 0;
        var clock = Stopwatch.StartNew();
        var firstStep = rank.Step;
        while (true)
        {
            if (await UntilTraining(view, rank) is not { } current) return;
            view = current;
            var me = view.RankOf(Epoch);
            var membership = new RankMembership(Assignment.JobId, view.MembershipEpoch, view.Endpoints.Select(IPEndPoint.Parse).ToList());
            await using var transport = TcpRankTransport.Start(membership, me, listener, keepListener: true);
            transport.ReceiveTimeout = _deadline.Current;
            rank.Join(new Collective(transport), me, view.Ranks.Count);
            try
            {
                var root = await rank.AgreeOnState(joining, _stop.Token);
                joining = false;
                if (root >= 0 && me != root) _log.LogInformation("Job {Job}: rank {Rank} took the state at step {Step} from rank {Root}", Assignment.JobId, me, rank.Step, root);
                var resumed = await Sync(rank.Step);
                if (resumed.Stop is not null || resumed.MembershipEpoch != view.MembershipEpoch)
                {
                    view = resumed;
                    continue;
                }
                if (await TrainInEpoch(rank, spec, view, me, transport, clock, firstStep) is not { } next) return;
                view = next;
            }
            catch (PeerFailedException e) when (!_stop.IsCancellationRequested)
            {
                var suspect = view.Ranks[e.Peer];
                _log.LogWarning("Job {Job}: rank {Rank} lost rank {Peer} in membership epoch {Membership} at step {Step}: {Error}",
                    Assignment.JobId, me, e.Peer, view.MembershipEpoch, rank.Step, e.Message);
                view = await ReportFailure(view, suspect, rank.Step, e);
            }
        }
    }

    IGangRank OpenRank(JobSpec spec, StartReply start)
    {
        var combine = spec.DataParallel!.Gradients;
        if (spec.Model.Type != ModelType.Dlrm) return new DataParallelRank(spec, FashionMnist.Load(spec.Data.Path), combine);
        var (model, _) = RecommendationRunner.OpenModel(_grains, spec, start.Shards);
        return new DlrmRank(spec, model, combine);
    }

    /// <summary>Trains until the job is done (returns null) or the membership changes (returns the new view).</summary>
    async Task<GangView?> TrainInEpoch(IGangRank rank, JobSpec spec, GangView view, int me, TcpRankTransport transport, Stopwatch clock, long firstStep)
    {
        var world = view.Ranks.Count;
        var lastReport = TimeSpan.Zero;
        TestMetrics? metrics = null;
        while (!rank.Done)
        {
            if (_channel.StopReason is not null) _stop.Cancel();
            _stop.Token.ThrowIfCancellationRequested();
            var started = clock.Elapsed;
            var trainingEpoch = rank.TrainingEpoch;
            if (_chaos.TakePoison(Assignment.JobId)) rank.PoisonNextStep();
            var loss = await rank.TrainStep(_stop.Token);
            _deadline.Observe(clock.Elapsed - started);
            _longestStep = Math.Max(_longestStep, (clock.Elapsed - started).TotalSeconds);
            transport.ReceiveTimeout = _deadline.Current;
            Interlocked.Exchange(ref _step, rank.Step);
            if (rank.NonFiniteRanks.Count == 0) _nonFiniteInARow = 0;
            else if (await SkippedForNonFinite(rank, me) is { } failure)
            {
                _channel.End(failure);
                return null;
            }
            if (!float.IsFinite(loss))
            {
                _channel.End(MemberOutcome.Failed(new JobFailure(FailureCause.NonFiniteLoss, $"loss {loss} on rank {me}; lower train.lr (now {spec.Train.Lr}) or use gradients: adasum", rank.Step)));
                return null;
            }
            var epochEnded = rank.TrainingEpoch != trainingEpoch || rank.Done;
            if (epochEnded) metrics = await rank.Evaluate(_stop.Token);
            if (me == 0 && (epochEnded || clock.Elapsed - lastReport >= ProgressPeriod))
            {
                lastReport = clock.Elapsed;
                var samplesPerSecond = (rank.Step - firstStep) * (double)spec.Train.BatchSize * world / Math.Max(1e-9, clock.Elapsed.TotalSeconds);
                _channel.Post(new JobProgress(rank.Step, rank.TotalSteps, rank.TrainingEpoch, loss, metrics?.Accuracy, samplesPerSecond, DateTime.UtcNow));
            }
            if (rank.Done)
            {
                var seconds = clock.Elapsed.TotalSeconds;
                _channel.End(me == 0
                    ? MemberOutcome.Succeeded(new JobResult(metrics!.Accuracy, loss, rank.Step, rank.TrainingEpoch, seconds,
                        (rank.Step - firstStep) * (double)spec.Train.BatchSize * world / seconds, Split(rank, firstStep),
                        metrics.Auc, metrics.LogLoss, _longestStep))
                    : MemberOutcome.Stopped("finished; rank 0 reports the result"));
                return null;
            }
            if (me == 0 && rank.Step % spec.Train.CheckpointEvery == 0) _channel.Post(new JobCheckpoint(rank.Step, rank.CaptureState(), DateTime.UtcNow));
            if (rank.Step % SyncEvery == 0)
            {
                var next = await Sync(rank.Step);
                if (next.Stop is not null || next.MembershipEpoch != view.MembershipEpoch) return next;
            }
        }
        return null;
    }

    /// <summary>Every rank skipped a step for non-finite gradients: rank 0 tells the job; too many in a row end the job.</summary>
    async Task<MemberOutcome?> SkippedForNonFinite(IGangRank rank, int me)
    {
        if (++_nonFiniteInARow >= MaxNonFiniteSteps)
            return me == 0
                ? MemberOutcome.Failed(new JobFailure(FailureCause.NonFiniteGradients,
                    $"rank(s) {string.Join(", ", rank.NonFiniteRanks)} sent non-finite gradients for {_nonFiniteInARow} steps in a row (every rank skipped them; nothing was applied); check the data and lower train.lr", rank.Step))
                : MemberOutcome.Stopped("the job failed on non-finite gradients; rank 0 reports it");
        if (me == 0) await Job.Note(JobEvent.NonFiniteStepSkipped(Assignment.NodeId, rank.Step, rank.NonFiniteRanks));
        return null;
    }

    static StepSplit Split(IGangRank rank, long firstStep)
    {
        var (compute, combine, optimizer) = rank.Time;
        var steps = Math.Max(1, rank.Step - firstStep);
        return new StepSplit(1000 * compute / steps, 1000 * combine / steps, 1000 * optimizer / steps);
    }

    /// <summary>Waits until this rank is in a membership that can train; null when it must stop.</summary>
    async Task<GangView?> UntilTraining(GangView view, IGangRank rank)
    {
        while (true)
        {
            if (view.Stop is { } why)
            {
                _channel.End(MemberOutcome.Stopped(why.Message));
                return null;
            }
            if (view.RankOf(Epoch) >= 0 && view.CanTrain) return view;
            await Task.Delay(PollPeriod, _stop.Token);
            view = await Sync(rank.Step);
        }
    }

    /// <summary>Reports a lost peer until the job grain answers with a new membership (or tells this rank to stop).</summary>
    async Task<GangView> ReportFailure(GangView view, long suspect, long step, PeerFailedException failure)
    {
        while (true)
        {
            var next = await _retry.ExecuteAsync(async _ => await Job.ReportPeerFailure(Epoch, view.MembershipEpoch, suspect, step, failure.Failure, failure.Message), _stop.Token);
            if (next.Stop is not null || next.MembershipEpoch != view.MembershipEpoch) return next;
            await Task.Delay(ReportAgainAfter, _stop.Token);
        }
    }

    Task<GangView> Sync(long completedSteps) =>
        _retry.ExecuteAsync(async _ => await Job.SyncGang(Epoch, completedSteps), _stop.Token).AsTask();
}
