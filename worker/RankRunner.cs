using System.Diagnostics;
using System.Net;
using Orchestrator.Core.Collectives;
using Orchestrator.Core.DataPlane;
using Orchestrator.Worker.Recommendation;
using Orchestrator.Worker.Training;

namespace Orchestrator.Worker;

/// <summary>
/// Runs one rank of a data-parallel job. It binds its data-plane endpoint once, joins the job's membership
/// through the job grain, and then, in each membership epoch: starts that membership's transport, agrees with the
/// other ranks on the state to continue from (<see cref="IGangRank.AgreeOnState"/>), and trains under the training
/// loop, meeting the job grain at every <see cref="SyncEvery"/>-th step boundary (where joiners are admitted). When a peer
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
    static readonly TimeSpan ReportAgainAfter = TimeSpan.FromMilliseconds(500);

    readonly IGrainFactory _grains;
    readonly IPAddress _address;
    readonly ILogger _log;
    readonly WorkerChaos _chaos;
    readonly MemberChannel _channel;
    readonly CancellationTokenSource _stop = new();
    readonly ReceiveDeadline _deadline = ReceiveDeadline.Default();
    bool _refused;
    long _step;
    int _nonFiniteInARow;

    public RankRunner(IGrainFactory grains, Assignment assignment, IPAddress dataPlaneAddress, ICheckpointStore checkpoints, WorkerChaos chaos, ILogger log)
    {
        (_grains, Assignment, _address, _chaos, _log) = (grains, assignment, dataPlaneAddress, chaos, log);
        _channel = new MemberChannel(grains, assignment, checkpoints, log);
        Completion = Task.Run(async () =>
        {
            try { await RunAsync(); }
            catch (Exception e) { log.RankRunnerEnded(assignment.JobId, assignment.AssignmentEpoch, e); }
        });
    }

    public Assignment Assignment { get; }
    public Task Completion { get; }
    public long Step => Interlocked.Read(ref _step);
    public bool Ended => Completion.IsCompleted;

    /// <summary>True once the cluster knows how this rank ended (or refused it), so it must not run again here.</summary>
    public bool Settled => _refused || _channel.Settled;

    long AssignmentEpoch => Assignment.AssignmentEpoch;
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
            start = await Job.JoinGang(AssignmentEpoch, Assignment.NodeId, endpoint);
        }
        catch (Exception e)
        {
            _log.RankNotJoined(Assignment.JobId, AssignmentEpoch, e.Message);
            return;
        }
        if (start.Refused is { } refused)
        {
            _log.AssignmentRefused(Assignment.JobId, AssignmentEpoch, refused.Cause, refused.Message);
            _refused = true;
            await _grains.GetGrain<INodeGrain>(Assignment.NodeId).Unassign(Assignment.JobId, AssignmentEpoch);
            return;
        }
        _log.RankServing(Assignment.JobId, AssignmentEpoch, Assignment.Device, endpoint);
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
            _log.RankFailed(Assignment.JobId, AssignmentEpoch, e);
            _channel.End(MemberOutcome.Failed(ArrayRunner.Describe(e)));
        }
        await reporting;
    }

    async Task Train(StartReply start, RankListener listener)
    {
        var spec = JobSpecJson.Read(start.SpecJson, new SpecValidationOptions { CheckFiles = false });
        using var rank = OpenRank(spec, start);
        if (await _channel.ReadCheckpoint(start, _stop.Token) is { } state) rank.RestoreState(state);
        var view = start.Gang!;
        // A running job's ranks are ahead of this one: it takes their state at its first agreement.
        var joining = view.Ranks.Count > 0;
        var session = new RankSession(this, rank, spec);
        var loop = new TrainingLoop(session, spec.Train.CheckpointEvery);
        while (true)
        {
            if (await UntilTraining(view, rank) is not { } current) return;
            view = current;
            var me = view.RankOf(AssignmentEpoch);
            var membership = new RankMembership(Assignment.JobId, view.MembershipEpoch, view.Endpoints.Select(IPEndPoint.Parse).ToList());
            await using var transport = TcpRankTransport.Start(membership, me, listener, keepListener: true);
            transport.ReceiveTimeout = _deadline.Current;
            rank.Join(new Collective(transport), me, view.Ranks.Count);
            try
            {
                var root = await rank.AgreeOnState(joining, _stop.Token);
                joining = false;
                if (root >= 0 && me != root) _log.StateTaken(Assignment.JobId, me, rank.Step, root);
                var resumed = await Sync(rank.Step);
                if (resumed.Stop is not null || resumed.MembershipEpoch != view.MembershipEpoch)
                {
                    view = resumed;
                    continue;
                }
                session.Enter(view, me, transport);
                if (await loop.Run(_stop.Token)) return;
                view = session.NextView!;
            }
            catch (PeerFailedException e) when (!_stop.IsCancellationRequested)
            {
                var suspect = view.Ranks[e.Peer];
                _log.PeerLost(Assignment.JobId, me, e.Peer, e.Failure, view.MembershipEpoch, rank.Step, e.Message);
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

    /// <summary>
    /// One rank's training in the membership epoch it <see cref="Enter"/>ed, as the training loop drives it: before each
    /// step the chaos hook may poison it; after it, the receive deadline follows the step time, a step every rank
    /// skipped for non-finite gradients is noted (too many in a row end the job), and every
    /// <see cref="SyncEvery"/>-th step boundary meets the job grain, whose new membership ends the loop's run.
    /// </summary>
    sealed class RankSession(RankRunner runner, IGangRank rank, JobSpec spec) : TrainingSession
    {
        readonly List<MemberChannel> _members = [runner._channel];
        readonly long _firstStep = rank.Step;
        GangView _view = null!;
        TcpRankTransport _transport = null!;
        int _me;
        MemberOutcome? _ended;

        /// <summary>The membership that ended the loop's last run.</summary>
        public GangView? NextView { get; private set; }

        public void Enter(GangView view, int me, TcpRankTransport transport) => (_view, _me, _transport, NextView) = (view, me, transport, null);

        public override IReadOnlyList<MemberChannel> Members => _members;
        public override bool Reports => _me == 0;
        public override int SamplesPerStep => spec.Train.BatchSize * _view.Ranks.Count;
        public override long Step(int member) => rank.Step;
        public override long TotalSteps(int member) => rank.TotalSteps;
        public override int TrainingEpoch(int member) => rank.TrainingEpoch;
        public override bool Done(int member) => rank.Done;
        public override MemberOutcome? EndedWith => _ended;
        public override byte[] Checkpoint(int member) => rank.CaptureState();
        public override void Leave(IReadOnlyCollection<int> members) => _members.Clear();
        public override JobResult Finish(int member, JobResult result) => result with { Split = Split(rank, _firstStep) };
        public override string NonFiniteAdvice(int member) => $"on rank {_me}; lower train.lr (now {spec.Train.Lr}) or use gradients: adasum";

        public override async Task<TestMetrics[]> Evaluate(CancellationToken ct) => [await rank.Evaluate(ct) ?? new TestMetrics(double.NaN)];

        public override async Task<float[]?> TrainStep(CancellationToken ct)
        {
            if (runner._chaos.TakePoison(runner.Assignment.JobId)) rank.PoisonNextStep();
            var clock = Stopwatch.StartNew();
            var loss = await rank.TrainStep(ct);
            runner._deadline.Observe(clock.Elapsed);
            _transport.ReceiveTimeout = runner._deadline.Current;
            Interlocked.Exchange(ref runner._step, rank.Step);
            _ended = await runner.SkippedForNonFinite(rank, _me);
            return [loss];
        }

        public override async Task<bool> AfterStep(CancellationToken ct)
        {
            if (rank.Step % SyncEvery != 0) return true;
            var next = await runner.Sync(rank.Step);
            if (next.Stop is null && next.MembershipEpoch == _view.MembershipEpoch) return true;
            NextView = next;
            return false;
        }
    }

    /// <summary>Every rank skipped a step for non-finite gradients: rank 0 tells the job; too many in a row end the job.</summary>
    async Task<MemberOutcome?> SkippedForNonFinite(IGangRank rank, int me)
    {
        if (rank.NonFiniteRanks.Count == 0)
        {
            _nonFiniteInARow = 0;
            return null;
        }
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
            if (view.RankOf(AssignmentEpoch) >= 0 && view.CanTrain) return view;
            await Task.Delay(PollPeriod, _stop.Token);
            view = await Sync(rank.Step);
        }
    }

    /// <summary>Reports a lost peer until the job grain answers with a new membership (or tells this rank to stop).</summary>
    async Task<GangView> ReportFailure(GangView view, long suspect, long step, PeerFailedException failure)
    {
        while (true)
        {
            var next = await Job.ReportPeerFailure(AssignmentEpoch, view.MembershipEpoch, suspect, step, failure.Failure, failure.Message).WaitAsync(_stop.Token);
            if (next.Stop is not null || next.MembershipEpoch != view.MembershipEpoch) return next;
            await Task.Delay(ReportAgainAfter, _stop.Token);
        }
    }

    Task<GangView> Sync(long completedSteps) =>
        Job.SyncGang(AssignmentEpoch, completedSteps).WaitAsync(_stop.Token);
}
