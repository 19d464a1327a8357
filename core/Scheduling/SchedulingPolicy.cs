namespace Orchestrator.Core.Scheduling;

/// <summary>
/// A job waiting for devices. <see cref="SubmitSequence"/> orders equal priorities first-come first-served.
/// Jobs with the same non-null <see cref="FusionKey"/> may share one device as a fused array. A gang
/// (data-parallel job) needs <see cref="Devices"/> devices at once, on any nodes, and can use up to
/// <see cref="MaxDevices"/>. A <see cref="Growth"/> request comes from a running gang below its maximum: it
/// takes up to <see cref="MaxDevices"/> free devices, any number from one.
/// </summary>
public sealed record PendingJob(string JobId, int Priority, long SubmitSequence, int Devices, string? FusionKey = null, long MemoryBytes = 0,
    bool Gang = false, int MaxDevices = 0, bool Growth = false)
{
    public int Wanted => Math.Max(Devices, MaxDevices);
}

/// <summary>An array running on one device; <see cref="Preemptible"/> when it can checkpoint and be requeued.</summary>
public sealed record RunningArray(string Device, IReadOnlyList<string> JobIds, int Priority, bool Preemptible);

/// <summary>A healthy node as the scheduler sees it: its free devices, each device's memory, and what runs there.</summary>
public sealed record NodeCapacity(string NodeId, IReadOnlyList<string> FreeDevices, long DeviceMemoryBytes = long.MaxValue,
    IReadOnlyList<RunningArray>? Running = null);

public sealed record DeviceSlot(string NodeId, string Device);

/// <summary>Jobs placed together: one job on its devices (a gang's may span nodes), or a fused array on one device.</summary>
public sealed record Placement(IReadOnlyList<string> JobIds, IReadOnlyList<DeviceSlot> Slots)
{
    public Placement(IReadOnlyList<string> jobIds, string nodeId, IReadOnlyList<string> devices)
        : this(jobIds, devices.Select(d => new DeviceSlot(nodeId, d)).ToList()) { }

    public string JobId => JobIds[0];
    public string NodeId => Slots[0].NodeId;
    public IReadOnlyList<string> Devices => Slots.Select(s => s.Device).ToList();
    public bool IsArray => JobIds.Count > 1;
}

/// <summary>An array to checkpoint and requeue so that a waiting gang of higher priority can start.</summary>
public sealed record Preemption(DeviceSlot Slot, IReadOnlyList<string> JobIds, string ForJobId);

public sealed record SchedulingDecision(IReadOnlyList<Placement> Placements, IReadOnlyList<Preemption> Preemptions);

/// <summary>
/// The placement policy, a pure function of (queue, nodes). The scheduler grain calls it, and so can a
/// benchmark or a simulator, without Orleans.
/// </summary>
public interface ISchedulingPolicy
{
    SchedulingDecision Decide(IReadOnlyCollection<PendingJob> queue, IReadOnlyList<NodeCapacity> nodes);
}

/// <summary>
/// A queue its owner keeps in the policy's order (<see cref="PriorityBestFitPolicy.Compare"/>) as jobs arrive and
/// leave, in two parts: gangs (and growth requests) and the preemptible rest. The policy then reads only as far as
/// it places, and once a gang waits, no later gang can start, so it stops reading the gangs' part: a million waiting
/// jobs cost what is placed, not what waits. Adding is a binary search and an insert; enumerating merges the parts.
/// </summary>
public sealed class OrderedQueue : IReadOnlyCollection<PendingJob>
{
    readonly List<PendingJob> _gangs = [];
    readonly List<PendingJob> _others = [];

    public OrderedQueue() { }

    public OrderedQueue(IEnumerable<PendingJob> jobs)
    {
        foreach (var job in jobs.Order(Comparer<PendingJob>.Create(PriorityBestFitPolicy.Compare))) Part(job).Add(job);
    }

    /// <summary>Gangs and growth requests, in order: what stops being placeable once a gang waits.</summary>
    public IReadOnlyList<PendingJob> Gangs => _gangs;

    /// <summary>Single-device and fusable jobs (preemptible), in order.</summary>
    public IReadOnlyList<PendingJob> Others => _others;

    public int Count => _gangs.Count + _others.Count;

    /// <summary>Whether a gang (not a growth request) waits, which may preempt with no device free.</summary>
    public bool HasWaitingGang => _gangs.Exists(j => !j.Growth);

    public void Add(PendingJob job)
    {
        var part = Part(job);
        int lo = 0, hi = part.Count;
        while (lo < hi)
        {
            var mid = (lo + hi) / 2;
            if (PriorityBestFitPolicy.Compare(part[mid], job) <= 0) lo = mid + 1; else hi = mid;
        }
        part.Insert(lo, job);
    }

    public int RemoveAll(Predicate<PendingJob> match) => _gangs.RemoveAll(match) + _others.RemoveAll(match);

    public IEnumerator<PendingJob> GetEnumerator()
    {
        int g = 0, o = 0;
        while (g < _gangs.Count || o < _others.Count)
            yield return o >= _others.Count || g < _gangs.Count && PriorityBestFitPolicy.Compare(_gangs[g], _others[o]) <= 0 ? _gangs[g++] : _others[o++];
    }

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();

    List<PendingJob> Part(PendingJob job) => job.Gang || job.Growth ? _gangs : _others;
}

/// <summary>The policy production runs: the scheduler grain's (registered by the silo) and the simulator's.</summary>
public static class SchedulingPolicies
{
    public static ISchedulingPolicy Production(int maxArrayWidth = PriorityBestFitPolicy.DefaultMaxArrayWidth) => new PriorityBestFitPolicy(maxArrayWidth);
}

public static class SchedulingPolicyExtensions
{
    public static IReadOnlyList<Placement> Place(this ISchedulingPolicy policy, IReadOnlyCollection<PendingJob> queue, IReadOnlyList<NodeCapacity> nodes) =>
        policy.Decide(queue, nodes).Placements;
}

/// <summary>
/// Priority first, then submission order.
/// <list type="bullet">
/// <item>A single-device job goes to the node with the fewest free devices that still fits it (best fit), which
/// keeps whole nodes free. A fusable job takes with it, onto its device, the next waiting jobs with its fusion
/// key (within <see cref="FusionLookAhead"/> places), up to <see cref="MaxArrayWidth"/> members and as many as the
/// device's memory holds.</item>
/// <item>A gang starts only when its minimum number of devices is free at once, and then takes up to its
/// maximum, from the nodes with the most free devices first (fewer nodes, less traffic). It never holds a
/// partial gang, so two waiting gangs cannot deadlock.</item>
/// <item>While a gang waits, later jobs may still take free devices only if they are preemptible (single jobs
/// and fused arrays, which checkpoint): gangs never backfill. When the free devices plus those of preemptible
/// arrays of lower priority than the gang reach its minimum, those arrays (lowest priority first) are preempted
/// for it and the free devices are kept for it; it starts in a later pass, once the preempted arrays have left.</item>
/// <item>A running gang below its maximum grows into free devices, but not while a gang of higher priority (or
/// earlier, at equal priority) waits; it never preempts or reserves for growth.</item>
/// </list>
/// A job that fits nowhere is skipped (no head-of-line blocking among single jobs).
/// </summary>
public sealed class PriorityBestFitPolicy(int maxArrayWidth = PriorityBestFitPolicy.DefaultMaxArrayWidth) : ISchedulingPolicy
{
    public const int DefaultMaxArrayWidth = 8;

    /// <summary>How far behind an array's first job its other members may wait in the queue.</summary>
    public const int FusionLookAhead = 4096;

    public int MaxArrayWidth { get; } = maxArrayWidth >= 1 ? maxArrayWidth : throw new ArgumentOutOfRangeException(nameof(maxArrayWidth), "must be at least 1");

    public SchedulingDecision Decide(IReadOnlyCollection<PendingJob> queue, IReadOnlyList<NodeCapacity> nodes)
    {
        var placements = new List<Placement>();
        var preemptions = new List<Preemption>();
        if (queue.Count == 0 || nodes.Count == 0) return new SchedulingDecision(placements, preemptions);
        var free = new FreeDeviceIndex(nodes);
        var ordered = queue as OrderedQueue ?? new OrderedQueue(queue);
        var (gangs, others) = (ordered.Gangs, ordered.Others);
        var placed = new HashSet<string>();
        var fusable = new FusableIndex(others);
        var gangWaiting = false;
        var preempted = new HashSet<string>();
        int g = 0, o = 0;
        while (true)
        {
            // What can still be placed: no later gang once one waits; no single job with no device free (a gang
            // may still preempt for itself). Nothing: stop reading (a queue of a million costs only what it places).
            var gangsLeft = !gangWaiting && g < gangs.Count;
            var othersLeft = o < others.Count && (gangWaiting ? free.Unreserved > 0 : free.TotalFree > 0);
            if (!gangsLeft && !othersLeft) break;
            if (gangsLeft && (!othersLeft || Compare(gangs[g], others[o]) <= 0))
            {
                var gang = gangs[g++];
                if (gang.Growth)
                {
                    // Growth is not preemptible: it never takes devices a waiting gang (of higher priority) could use.
                    if (free.Unreserved > 0) placements.Add(new Placement([gang.JobId], free.TakeSpread(Math.Min(gang.Wanted, free.Unreserved))));
                }
                else if (free.TotalFree >= gang.Devices)
                    placements.Add(new Placement([gang.JobId], free.TakeSpread(Math.Min(gang.Wanted, free.TotalFree))));
                else
                {
                    // One reservation at a time: a lower gang never jumps a waiting higher one.
                    gangWaiting = true;
                    var forGang = PreemptFor(gang, nodes, free.TotalFree, preempted).ToList();
                    preemptions.AddRange(forGang);
                    // It starts once the preempted arrays have left: keep today's free devices for it meanwhile.
                    if (forGang.Count > 0) free.Reserve(gang.Devices);
                }
                continue;
            }
            var at = o++;
            var job = others[at];
            if (placed.Contains(job.JobId) || free.MaxFree == 0) continue;
            if (free.TryTake(job.Devices, job.MemoryBytes) is not { } taken) continue;
            var members = new List<string> { job.JobId };
            placed.Add(job.JobId);
            if (job.FusionKey is { } key && job.Devices == 1)
            {
                var width = job.MemoryBytes > 0 ? (int)Math.Min(MaxArrayWidth, taken.DeviceMemory / job.MemoryBytes) : MaxArrayWidth;
                while (members.Count < width && fusable.Next(key, at) is { } next)
                    if (placed.Add(next.JobId)) members.Add(next.JobId);
            }
            placements.Add(new Placement(members, taken.NodeId, taken.Devices));
        }
        return new SchedulingDecision(placements, preemptions);
    }

    /// <summary>Queue order: higher priority first, then earlier submission.</summary>
    public static int Compare(PendingJob a, PendingJob b) =>
        a.Priority != b.Priority ? b.Priority.CompareTo(a.Priority) : a.SubmitSequence.CompareTo(b.SubmitSequence);

    /// <summary>
    /// The waiting fusable jobs by key, in queue order, indexed lazily: the preemptible jobs are read only as far as a
    /// key's next member requires, and at most <see cref="FusionLookAhead"/> places past the array's first job (a sweep's jobs
    /// arrive together; a queue of a million is never read to its end to find that a sweep has no more).
    /// </summary>
    sealed class FusableIndex(IReadOnlyList<PendingJob> others)
    {
        readonly Dictionary<string, Queue<PendingJob>> _byKey = [];
        int _read;

        /// <summary>The next waiting job with <paramref name="key"/> after position <paramref name="after"/>, or null.</summary>
        public PendingJob? Next(string key, int after)
        {
            _read = Math.Max(_read, after + 1);
            var until = Math.Min(others.Count, after + 1 + FusionLookAhead);
            while (true)
            {
                if (_byKey.TryGetValue(key, out var waiting) && waiting.Count > 0) return waiting.Dequeue();
                if (_read >= until) return null;
                var job = others[_read++];
                if (job.FusionKey is { } k && job.Devices == 1)
                {
                    if (!_byKey.TryGetValue(k, out var q)) _byKey[k] = q = new Queue<PendingJob>();
                    q.Enqueue(job);
                }
            }
        }
    }

    /// <summary>The preemptible arrays of lower priority to stop, lowest priority first, if they are enough.</summary>
    static IEnumerable<Preemption> PreemptFor(PendingJob gang, IReadOnlyList<NodeCapacity> nodes, int freeNow, HashSet<string> preempted)
    {
        var candidates = nodes.SelectMany(n => (n.Running ?? []).Select(a => (Node: n.NodeId, Array: a)))
            .Where(x => x.Array.Preemptible && x.Array.Priority < gang.Priority && !x.Array.JobIds.Any(preempted.Contains))
            .OrderBy(x => x.Array.Priority).ThenBy(x => x.Node).ThenBy(x => x.Array.Device)
            .ToList();
        var needed = gang.Devices - freeNow;
        if (needed <= 0 || candidates.Count < needed) return [];
        var chosen = candidates.Take(needed).ToList();
        foreach (var c in chosen) preempted.UnionWith(c.Array.JobIds);
        return chosen.Select(c => new Preemption(new DeviceSlot(c.Node, c.Array.Device), c.Array.JobIds, gang.JobId));
    }

    /// <summary>Nodes bucketed by free-device count, so best fit costs O(devices per node), not O(nodes).</summary>
    sealed class FreeDeviceIndex
    {
        readonly List<List<int>> _byFree = [];
        readonly List<NodeCapacity> _nodes = [];
        readonly List<Queue<string>> _devices = [];
        readonly List<int> _bucketOf = [];
        int _reserved;

        public FreeDeviceIndex(IReadOnlyList<NodeCapacity> nodes)
        {
            // Buckets are taken from their end (O(1)); adding in reverse makes equal nodes go in the order given.
            for (int i = nodes.Count - 1; i >= 0; i--)
            {
                var n = nodes[i];
                if (n.FreeDevices.Count == 0) continue;
                _nodes.Add(n);
                _devices.Add(new Queue<string>(n.FreeDevices));
                _bucketOf.Add(n.FreeDevices.Count);
                Bucket(n.FreeDevices.Count).Add(_nodes.Count - 1);
                TotalFree += n.FreeDevices.Count;
            }
        }

        public int TotalFree { get; private set; }

        /// <summary>Free devices not kept for a waiting gang.</summary>
        public int Unreserved => TotalFree - _reserved;

        /// <summary>Free devices nobody else may take (kept for a waiting gang).</summary>
        public void Reserve(int devices) => _reserved = Math.Min(TotalFree, _reserved + devices);

        public int MaxFree
        {
            get
            {
                if (TotalFree - _reserved <= 0) return 0;
                for (int f = _byFree.Count - 1; f > 0; f--) if (_byFree[f].Count > 0) return f;
                return 0;
            }
        }

        List<int> Bucket(int free)
        {
            while (_byFree.Count <= free) _byFree.Add([]);
            return _byFree[free];
        }

        /// <summary>Takes <paramref name="count"/> devices on the fullest node that has them and enough memory per device.</summary>
        public (string NodeId, IReadOnlyList<string> Devices, long DeviceMemory)? TryTake(int count, long memoryPerDevice)
        {
            if (TotalFree - _reserved < count) return null;
            for (int f = count; f < _byFree.Count; f++)
            {
                var bucket = _byFree[f];
                var at = bucket.FindLastIndex(n => _nodes[n].DeviceMemoryBytes >= memoryPerDevice);
                if (at < 0) continue;
                var node = bucket[at];
                bucket.RemoveAt(at);
                var devices = Take(node, count);
                return (_nodes[node].NodeId, devices, _nodes[node].DeviceMemoryBytes);
            }
            return null;
        }

        /// <summary>Takes <paramref name="count"/> devices across nodes, from the nodes with the most free devices first.</summary>
        public IReadOnlyList<DeviceSlot> TakeSpread(int count)
        {
            var slots = new List<DeviceSlot>(count);
            while (slots.Count < count)
            {
                var f = _byFree.Count - 1;
                while (f > 0 && _byFree[f].Count == 0) f--;
                var bucket = _byFree[f];
                var node = bucket[^1];
                bucket.RemoveAt(bucket.Count - 1);
                var take = Math.Min(f, count - slots.Count);
                slots.AddRange(Take(node, take).Select(d => new DeviceSlot(_nodes[node].NodeId, d)));
            }
            return slots;
        }

        List<string> Take(int node, int count)
        {
            var devices = new List<string>(count);
            for (int i = 0; i < count; i++) devices.Add(_devices[node].Dequeue());
            var left = _bucketOf[node] - count;
            _bucketOf[node] = left;
            TotalFree -= count;
            if (left > 0) Bucket(left).Add(node);
            return devices;
        }
    }
}
