using System.Diagnostics;
using Orchestrator.Core.Reliability;
using Orchestrator.Core.Scheduling;

namespace Orchestrator.Core.Simulation;

/// <summary>
/// A deterministic discrete-event simulation of a cluster (devices in nodes, jobs arriving, training, failing and
/// recovering) that places jobs with the production <see cref="ISchedulingPolicy"/>, the same class the scheduler
/// grain calls. Same settings and seed, same event log (<see cref="SimulationResult.EventLogHash"/>).
/// </summary>
public sealed partial class ClusterSimulator
{
    static readonly DateTime TimeOrigin = new(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);

    enum Kind { Arrival, Started, Completed, NodeFailed, NodeRepaired, Requeue, Resume, Pass }

    readonly record struct Event(Kind Kind, int Subject, long Version);

    sealed class JobRun(SimJob job)
    {
        public SimJob Job { get; } = job;
        public double Remaining = job.DurationSeconds; // seconds of work at full size
        public double Progress;                        // seconds of work done and kept
        public double Rate;                            // work seconds per second while training
        public double Since;                           // when Rate last applied
        public bool Training;
        public long Version;
        public int Devices;                            // held now
        public readonly List<(int Node, int Device)> Slots = [];
        public int Array = -1;                         // small jobs: their array
        public double? FirstStart;
        public double? Done;
        public double QueuedSince;
        public double Queueing;
        public bool GrowthWanted;
        public readonly List<PhaseMark> Marks = [];
    }

    sealed class ArrayRun(int id, int node, int device, List<JobRun> members)
    {
        public int Id { get; } = id;
        public int Node { get; } = node;
        public int Device { get; } = device;
        public List<JobRun> Members { get; } = members;
        public int Left = members.Count;
    }

    readonly SimulationSettings _s;
    readonly ISchedulingPolicy _policy;
    readonly RecoveryTimes _times;
    readonly FailureModel _failures;
    readonly Random _failureRandom;
    readonly PriorityQueue<Event, (double, long)> _events = new();
    long _sequence;
    double _now;
    ulong _hash = 14695981039346656037UL;
    long _eventCount;

    readonly List<JobRun> _runs = [];
    readonly List<ArrayRun> _arrays = [];
    readonly OrderedQueue _queue = new();
    readonly object?[][] _occupant; // per node, per device: a Run (large) or an ArrayRun (small), or null
    readonly bool[] _up;
    readonly int[] _free;
    readonly HashSet<int> _nodesWithFree = [];
    readonly string[] _nodeNames, _deviceNames;
    readonly Dictionary<string, int> _nodeIndex = [];
    bool _passPending;
    int _busy;
    double _busyDeviceSeconds, _lastBusyChange;
    long _decisions;
    int _passes;
    double _policySeconds;
    int _failureCount;
    readonly Dictionary<FailureCategory, double> _lost = [];

    public ClusterSimulator(SimulationSettings settings, ISchedulingPolicy policy)
    {
        if (settings.Devices < settings.DevicesPerNode) throw new ArgumentException($"devices: {settings.Devices} is fewer than one node of {settings.DevicesPerNode}");
        if (settings.Days <= 0) throw new ArgumentException("days: must be positive");
        (_s, _policy) = (settings, policy);
        _times = settings.Recovery ?? new RecoveryTimes();
        _failures = settings.Failures ?? new FailureModel();
        _failureRandom = new Random(settings.Seed * 7919 + 1);
        var nodes = settings.Devices / settings.DevicesPerNode;
        _occupant = new object?[nodes][];
        (_up, _free, _nodeNames) = (new bool[nodes], new int[nodes], new string[nodes]);
        _deviceNames = Enumerable.Range(0, settings.DevicesPerNode).Select(d => $"d{d}").ToArray();
        for (int n = 0; n < nodes; n++)
        {
            (_occupant[n], _up[n], _free[n], _nodeNames[n]) = (new object?[settings.DevicesPerNode], true, settings.DevicesPerNode, $"n{n}");
            _nodeIndex[_nodeNames[n]] = n;
            _nodesWithFree.Add(n);
        }
    }

    public SimulationResult Run(string name, TextWriter? eventLog = null)
    {
        var clock = Stopwatch.StartNew();
        var end = _s.Days * 86400;
        var jobs = _s.Trace ?? (_s.Workload ?? new WorkloadModel()).Generate(new Random(_s.Seed), end, _s.Devices);
        foreach (var job in jobs.Where(j => j.SubmitSeconds < end).OrderBy(j => j.SubmitSeconds))
        {
            // Job ids are the runs' indices, so that events name them by number.
            _runs.Add(new JobRun(job with { Id = _runs.Count }));
            Schedule(job.SubmitSeconds, Kind.Arrival, _runs.Count - 1);
        }
        var perNodeSecond = _failures.PerThousandNodeDays / 1000 / 86400;
        for (int n = 0; n < _up.Length; n++) ScheduleFailure(n, 0, perNodeSecond);
        eventLog?.WriteLine("seconds,event,subject,version");

        while (_events.TryDequeue(out var e, out var at) && at.Item1 <= end)
        {
            AccountBusy(at.Item1);
            _now = at.Item1;
            _eventCount++;
            Mix(e, eventLog);
            switch (e.Kind)
            {
                case Kind.Arrival: Enqueue(_runs[e.Subject]); break;
                case Kind.Started or Kind.Resume: if (Current(e)) Train(_runs[e.Subject]); break;
                case Kind.Completed: if (Current(e)) Complete(_runs[e.Subject]); break;
                case Kind.Requeue: if (Current(e)) Enqueue(_runs[e.Subject]); break;
                case Kind.NodeFailed: Fail(e.Subject); break;
                case Kind.NodeRepaired: Repair(e.Subject, perNodeSecond); break;
                case Kind.Pass: _passPending = false; Place(); break;
            }
        }
        AccountBusy(end);
        _now = end;
        return Result(name, end, clock.Elapsed.TotalSeconds);
    }

    bool Current(Event e) => _runs[e.Subject].Version == e.Version;

    void Schedule(double at, Kind kind, int subject, long version = 0) => _events.Enqueue(new Event(kind, subject, version), (at, _sequence++));

    void ScheduleFailure(int node, double from, double perSecond) =>
        Schedule(from + -Math.Log(1 - _failureRandom.NextDouble()) / perSecond, Kind.NodeFailed, node);

    void Mix(Event e, TextWriter? log)
    {
        foreach (var v in new[] { BitConverter.DoubleToInt64Bits(_now), (long)e.Kind, e.Subject, e.Version })
            for (int b = 0; b < 8; b++) _hash = (_hash ^ (byte)(v >> (8 * b))) * 1099511628211UL;
        log?.WriteLine(FormattableString.Invariant($"{_now:F3},{e.Kind},{e.Subject},{e.Version}"));
    }

    void Mark(JobRun r, RunPhase phase, long? step = null) => r.Marks.Add(new PhaseMark(TimeOrigin.AddSeconds(_now), phase, step ?? (long)(r.Progress * 1000)));

    void Enqueue(JobRun r)
    {
        Mark(r, RunPhase.Queued);
        r.QueuedSince = _now;
        var job = r.Job;
        Queue(new PendingJob(Id(r), job.Kind == SimJobKind.Large ? 1 : 0, job.Id, job.Devices,
            _s.Fusion && job.Kind == SimJobKind.Small ? job.FusionKey : null, Gang: job.Kind == SimJobKind.Large, MaxDevices: job.Kind == SimJobKind.Large ? job.Devices : 0));
    }

    /// <summary>Keeps the queue in the policy's order, so that it never has to sort it.</summary>
    void Queue(PendingJob entry)
    {
        _queue.Add(entry);
        RequestPass();
    }

    static string Id(JobRun r) => r.Job.Id.ToString(System.Globalization.CultureInfo.InvariantCulture);

    void RequestPass()
    {
        if (_passPending) return;
        _passPending = true;
        // Passes run at the scheduler's period, like the scheduler grain's ticker, batching what happened since.
        var period = _s.SchedulingPeriodSeconds;
        Schedule(Math.Floor(_now / period) * period + period, Kind.Pass, -1);
    }

    void Place()
    {
        var gangWaits = _queue.HasWaitingGang;
        if (_queue.Count == 0 || _nodesWithFree.Count == 0 && !gangWaits) return;
        var candidates = gangWaits ? Enumerable.Range(0, _up.Length).Where(n => _up[n]) : _nodesWithFree.Order();
        var capacity = candidates.Select(n => new NodeCapacity(_nodeNames[n], FreeDevices(n), long.MaxValue, gangWaits ? RunningArrays(n) : null)).ToList();
        var timer = Stopwatch.StartNew();
        var decision = _policy.Decide(_queue, capacity);
        _policySeconds += timer.Elapsed.TotalSeconds;
        _passes++;
        _decisions += decision.Placements.Count;
        var placed = new HashSet<string>();
        foreach (var p in decision.Preemptions) Preempt(p);
        foreach (var p in decision.Placements)
        {
            placed.UnionWith(p.JobIds);
            Take(p);
        }
        if (placed.Count > 0) _queue.RemoveAll(q => placed.Contains(q.JobId));
        if (decision.Preemptions.Count > 0) RequestPass();
    }

    List<string> FreeDevices(int n)
    {
        var free = new List<string>(_free[n]);
        for (int d = 0; d < _deviceNames.Length; d++) if (_occupant[n][d] is null) free.Add(_deviceNames[d]);
        return free;
    }

    List<RunningArray> RunningArrays(int n) =>
        _occupant[n].Select((o, d) => (o, d)).Where(x => x.o is ArrayRun).Select(x => new RunningArray(_deviceNames[x.d],
            ((ArrayRun)x.o!).Members.Where(m => m.Done is null).Select(Id).ToList(), 0, Preemptible: true)).ToList();

    void Take(Placement p)
    {
        var runs = p.JobIds.Select(id => _runs[int.Parse(id, System.Globalization.CultureInfo.InvariantCulture)]).ToList();
        var first = runs[0];
        if (first.Job.Kind == SimJobKind.Small)
        {
            var slot = p.Slots[0];
            var (node, device) = (_nodeIndex[slot.NodeId], Array.IndexOf(_deviceNames, slot.Device));
            var array = new ArrayRun(_arrays.Count, node, device, runs);
            _arrays.Add(array);
            Occupy(node, device, array);
            foreach (var r in runs) Begin(r, array.Id, [(node, device)], runs.Count);
            return;
        }
        var slots = p.Slots.Select(s => (_nodeIndex[s.NodeId], Array.IndexOf(_deviceNames, s.Device))).ToList();
        foreach (var (node, device) in slots) Occupy(node, device, first);
        if (first.Devices > 0) first.GrowthWanted = false;
        Begin(first, -1, slots, 1);
        if (first.Devices < first.Job.Devices && !first.GrowthWanted && first.Done is null)
        {
            // Grew back only part of the way: keep asking for the rest.
            first.GrowthWanted = true;
            Queue(new PendingJob(Id(first), 1, first.Job.Id, 1, Gang: true, MaxDevices: first.Job.Devices - first.Devices, Growth: true));
        }
    }

    /// <summary>A placement: queueing ends; after the start-up (first start) or restart time, training begins.</summary>
    void Begin(JobRun r, int array, List<(int, int)> slots, int width)
    {
        var growing = r.Devices > 0;
        r.Slots.AddRange(slots);
        r.Devices += slots.Count;
        r.Array = array;
        if (growing)
        {
            // A shrunken gang got devices back: it trains on at the larger size from now.
            Advance(r);
            SetRate(r, RateOf(r, width));
            return;
        }
        r.Queueing += _now - r.QueuedSince;
        Mark(r, RunPhase.Starting);
        r.Version++;
        r.Rate = RateOf(r, width);
        var startUp = r.FirstStart is null ? _times.StartSeconds : _times.RestartSeconds;
        r.FirstStart ??= _now;
        Schedule(_now + startUp, Kind.Started, r.Job.Id, r.Version);
    }

    double RateOf(JobRun r, int width)
    {
        if (r.Job.Kind == SimJobKind.Small) return width == 1 ? 1 : FusionThroughput(width) / width;
        var size = (double)r.Devices / r.Job.Devices;
        // Checkpointing costs its write time once per interval.
        return _s.LargeRecovery == LargeJobRecovery.CheckpointRestart ? size / (1 + _times.CheckpointWriteSeconds / CheckpointInterval(r)) : size;
    }

    double FusionThroughput(int width)
    {
        var table = (_s.FusionThroughput ?? SimulationSettings.MeasuredFusionThroughput).OrderBy(x => x.Key).ToList();
        if (table.FirstOrDefault(x => x.Key == width) is { Key: > 0 } exact) return exact.Value;
        var below = table.LastOrDefault(x => x.Key < width);
        var above = table.FirstOrDefault(x => x.Key > width);
        if (below.Key == 0) return above.Value;
        if (above.Key == 0) return below.Value;
        return below.Value + (above.Value - below.Value) * (width - below.Key) / (above.Key - below.Key);
    }

    /// <summary>Seconds of work between checkpoints: the scenario's, or Daly's optimum for the job's MTTF.</summary>
    double CheckpointInterval(JobRun r)
    {
        if (r.Job.Kind == SimJobKind.Small) return _times.SmallCheckpointMinutes * 60;
        if (_times.LargeCheckpointMinutes is { } m) return m * 60;
        var nodes = Math.Ceiling(r.Job.Devices / (double)_s.DevicesPerNode);
        var mttf = ReliabilityModel.JobMttf(nodes, _failures.PerThousandNodeDays / 1000);
        return ReliabilityModel.DalyInterval(TimeSpan.FromSeconds(_times.CheckpointWriteSeconds), mttf).TotalSeconds;
    }

    void Train(JobRun r)
    {
        Mark(r, RunPhase.Training);
        r.Training = true;
        r.Since = _now;
        ScheduleCompletion(r);
    }

    void Advance(JobRun r)
    {
        if (!r.Training) return;
        var work = Math.Min(r.Remaining, r.Rate * (_now - r.Since));
        (r.Progress, r.Remaining, r.Since) = (r.Progress + work, r.Remaining - work, _now);
    }

    /// <summary>A new rate from now; a paused job keeps its pending resume and uses the rate when it resumes.</summary>
    void SetRate(JobRun r, double rate)
    {
        r.Rate = rate;
        if (!r.Training) return;
        r.Version++;
        ScheduleCompletion(r);
    }

    void ScheduleCompletion(JobRun r) => Schedule(_now + (r.Rate > 0 ? r.Remaining / r.Rate : double.PositiveInfinity), Kind.Completed, r.Job.Id, r.Version);

    void Complete(JobRun r)
    {
        Advance(r);
        r.Training = false;
        r.Done = _now;
        r.Version++;
        Mark(r, RunPhase.Ended);
        if (r.Array >= 0)
        {
            var array = _arrays[r.Array];
            if (--array.Left == 0) Release(array.Node, array.Device);
        }
        else foreach (var (n, d) in r.Slots) Release(n, d);
        r.Slots.Clear();
        r.Devices = 0;
        _queue.RemoveAll(q => q.Growth && q.JobId == Id(r));
    }

    void Preempt(Preemption p)
    {
        var (node, device) = (_nodeIndex[p.Slot.NodeId], Array.IndexOf(_deviceNames, p.Slot.Device));
        if (_occupant[node][device] is not ArrayRun array) return;
        foreach (var m in array.Members.Where(m => m.Done is null))
        {
            // Preempted arrays checkpoint first: nothing is lost but the restart.
            Advance(m);
            Stop(m);
            Enqueue(m);
        }
        Release(node, device);
    }

    void Stop(JobRun r)
    {
        r.Training = false;
        r.Version++;
        r.Slots.Clear();
        r.Devices = 0;
        r.Array = -1;
    }

    void Occupy(int node, int device, object who)
    {
        _occupant[node][device] = who;
        if (--_free[node] == 0) _nodesWithFree.Remove(node);
        _busy++;
    }

    void Release(int node, int device, bool keepDown = false)
    {
        _occupant[node][device] = null;
        _busy--;
        if (keepDown || !_up[node]) return;
        if (_free[node]++ == 0) _nodesWithFree.Add(node);
        RequestPass();
    }

    void AccountBusy(double at)
    {
        _busyDeviceSeconds += _busy * (at - _lastBusyChange);
        _lastBusyChange = at;
    }

    SimulationResult Result(string name, double end, double wall)
    {
        var done = _runs.Where(r => r.Done is not null).ToList();
        Stats Hours(IEnumerable<double> seconds) => Stats.Of(seconds.Select(s => s / 3600));
        var small = done.Where(r => r.Job.Kind == SimJobKind.Small).ToList();
        var large = done.Where(r => r.Job.Kind == SimJobKind.Large).ToList();
        var ettr = large.Select(r => TrainingTimeAccounting.Account(r.Marks, TimeOrigin.AddSeconds(end), (long)(r.Progress * 1000)).Ettr);
        var outcomes = _runs.Where(r => r.Job.Kind == SimJobKind.Large && r.Marks.Count > 0).Select(r =>
        {
            var account = TrainingTimeAccounting.Account(r.Marks, TimeOrigin.AddSeconds(end), (long)(r.Progress * 1000));
            return new LargeJobOutcome(r.Job.Id, r.Job.Devices, account.Ettr, r.Marks.Count(m => m.Phase is RunPhase.Stalled or RunPhase.Paused), account.Wall.TotalHours, r.Done is not null);
        }).ToList();
        return new SimulationResult(name, _eventCount, _hash, _runs.Count, done.Count, _busyDeviceSeconds / (_s.Devices * end),
            Hours(small.Select(r => r.Done!.Value - r.Job.SubmitSeconds)), Hours(large.Select(r => r.Done!.Value - r.Job.SubmitSeconds)),
            Hours(small.Select(r => r.Queueing)), Hours(large.Select(r => r.Queueing)), Stats.Of(ettr),
            _lost.ToDictionary(x => x.Key, x => x.Value), _failureCount, _decisions, _passes, _policySeconds, wall, outcomes);
    }
}
