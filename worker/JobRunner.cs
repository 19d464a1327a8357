using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Orchestrator.Core.Specs;
using Orchestrator.Grains;
using Orchestrator.Worker.Training;
using Polly;

namespace Orchestrator.Worker;

/// <summary>
/// Runs one assignment: asks the job grain where to start, trains on a dedicated thread, and reports progress,
/// checkpoints and the result from an async loop, so the training loop never waits on the network.
/// </summary>
public sealed class JobRunner
{
    static readonly TimeSpan ReportPeriod = TimeSpan.FromSeconds(2);
    readonly IGrainFactory _grains;
    readonly Assignment _assignment;
    readonly ILogger _log;
    readonly CancellationTokenSource _stop = new();
    readonly ResiliencePipeline _retry = Resilience.Retry(TimeSpan.FromSeconds(30));
    readonly SemaphoreSlim _wake = new(0);
    volatile JobProgress? _progress;
    volatile JobCheckpoint? _checkpoint;
    string? _stopReason;

    public JobRunner(IGrainFactory grains, Assignment assignment, ILogger log)
    {
        (_grains, _assignment, _log) = (grains, assignment, log);
        Completion = Task.Run(RunAsync);
    }

    public Assignment Assignment => _assignment;
    public Task Completion { get; }
    public long Step => _progress?.Step ?? 0;

    /// <summary>Stops training at the next step (the assignment was removed or moved).</summary>
    public void Stop(string reason)
    {
        _stopReason ??= reason;
        _stop.Cancel();
    }

    IJobGrain Job => _grains.GetGrain<IJobGrain>(_assignment.JobId);

    async Task RunAsync()
    {
        var epoch = _assignment.Epoch;
        StartReply start;
        try { start = await _retry.ExecuteAsync(async _ => await Job.Start(epoch, _assignment.NodeId)); }
        catch (Exception e) { _log.LogWarning(e, "Job {Job}: could not start", _assignment.JobId); return; }
        if (!start.Accepted)
        {
            _log.LogInformation("Job {Job} epoch {Epoch} refused: {Reason}", _assignment.JobId, epoch, start.Reason);
            await _grains.GetGrain<INodeGrain>(_assignment.NodeId).Unassign(_assignment.JobId, epoch);
            return;
        }

        var training = Task.Factory.StartNew(() => Train(start), _stop.Token, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        var reporting = ReportLoop(training);
        Outcome outcome;
        try { outcome = await training; }
        catch (OperationCanceledException) { outcome = Outcome.Stopped(_stopReason ?? "stopped"); }
        catch (Exception e)
        {
            _log.LogError(e, "Job {Job} failed", _assignment.JobId);
            outcome = Outcome.Failed(Describe(e));
        }
        _wake.Release();
        await reporting;
        await Finish(outcome);
    }

    Outcome Train(StartReply start)
    {
        var spec = JobSpecParser.Parse(start.SpecJson);
        var data = FashionMnist.Load(spec.Data.Path);
        using var trainer = new ArrayTrainer([spec], data);
        var member = trainer.Members[0];
        if (start.Checkpoint is { } cp)
        {
            trainer.Restore(0, cp.Data);
            _log.LogInformation("Job {Job} resumed from checkpoint at step {Step}", _assignment.JobId, member.Step);
        }
        var clock = Stopwatch.StartNew();
        var window = Stopwatch.StartNew();
        long firstStep = member.Step, windowStart = member.Step;
        double? accuracy = null;
        double samplesPerSecond = 0, loss = double.NaN;
        while (!member.Done)
        {
            _stop.Token.ThrowIfCancellationRequested();
            loss = trainer.Step()[0];
            if (!double.IsFinite(loss))
                return Outcome.Failed($"non-finite loss ({loss}) at step {member.Step}; lower train.lr (now {spec.Train.Lr})");
            var epochEnded = member.Step % member.Plan.StepsPerEpoch == 0 || member.Done;
            if (epochEnded) accuracy = trainer.Evaluate()[0];
            if (window.Elapsed.TotalSeconds >= 1 || epochEnded)
            {
                samplesPerSecond = (member.Step - windowStart) * spec.Train.BatchSize / Math.Max(1e-9, window.Elapsed.TotalSeconds);
                windowStart = member.Step;
                window.Restart();
                _progress = new JobProgress(member.Step, member.Plan.TotalSteps, member.Epoch, loss, accuracy, samplesPerSecond, DateTime.UtcNow);
            }
            if (member.Step % spec.Train.CheckpointEvery == 0 && !member.Done)
            {
                _checkpoint = new JobCheckpoint(member.Step, trainer.Checkpoint(0), DateTime.UtcNow);
                _wake.Release();
            }
            if (epochEnded) _wake.Release();
        }
        var seconds = clock.Elapsed.TotalSeconds;
        var overall = (member.Step - firstStep) * spec.Train.BatchSize / Math.Max(1e-9, seconds);
        return Outcome.Succeeded(new JobResult(accuracy ?? 0, loss, member.Step, member.Plan.Epochs, seconds, overall));
    }

    async Task ReportLoop(Task training)
    {
        var epoch = _assignment.Epoch;
        JobProgress? sentProgress = null;
        JobCheckpoint? sentCheckpoint = null;
        while (true)
        {
            await _wake.WaitAsync(ReportPeriod);
            try
            {
                if (_checkpoint is { } cp && cp != sentCheckpoint)
                {
                    Apply(await Job.SaveCheckpoint(epoch, cp));
                    sentCheckpoint = cp;
                }
                if (_progress is { } p && p != sentProgress)
                {
                    Apply(await Job.ReportProgress(epoch, p));
                    sentProgress = p;
                }
            }
            catch (Exception e) when (Resilience.IsTransient(e))
            {
                // Training goes on; the next report carries the latest state.
                _log.LogWarning("Job {Job}: cluster unreachable ({Error}); training continues", _assignment.JobId, e.GetType().Name);
            }
            if (training.IsCompleted) return;
        }
    }

    void Apply(WorkAck ack)
    {
        if (!ack.Continue) Stop(ack.Reason ?? "stopped by the cluster");
    }

    async Task Finish(Outcome outcome)
    {
        var epoch = _assignment.Epoch;
        try
        {
            switch (outcome.Kind)
            {
                case OutcomeKind.Succeeded:
                    await _retry.ExecuteAsync(async _ => await Job.Complete(epoch, outcome.Result!));
                    _log.LogInformation("Job {Job} succeeded: accuracy {Accuracy:F4}", _assignment.JobId, outcome.Result!.TestAccuracy);
                    break;
                case OutcomeKind.Failed:
                    await _retry.ExecuteAsync(async _ => await Job.Fail(epoch, outcome.Reason!));
                    break;
                default:
                    _log.LogInformation("Job {Job} stopped on this node: {Reason}", _assignment.JobId, outcome.Reason);
                    break;
            }
        }
        catch (Exception e)
        {
            // The node stays assigned; the next heartbeat's reconcile starts it again from its checkpoint.
            _log.LogError(e, "Job {Job}: could not report its outcome", _assignment.JobId);
        }
    }

    static string Describe(Exception e) => e switch
    {
        FileNotFoundException or InvalidDataException or SpecValidationException => e.Message,
        OutOfMemoryException => "out of memory on the worker; use a smaller batch size or model",
        _ => $"{e.GetType().Name}: {e.Message}",
    };

    enum OutcomeKind { Succeeded, Failed, Stopped }

    sealed record Outcome(OutcomeKind Kind, JobResult? Result, string? Reason)
    {
        public static Outcome Succeeded(JobResult r) => new(OutcomeKind.Succeeded, r, null);
        public static Outcome Failed(string reason) => new(OutcomeKind.Failed, null, reason);
        public static Outcome Stopped(string reason) => new(OutcomeKind.Stopped, null, reason);
    }
}
