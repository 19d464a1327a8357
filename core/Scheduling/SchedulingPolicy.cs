namespace Orchestrator.Core.Scheduling;

/// <summary>
/// A job waiting for devices. <see cref="SubmitSequence"/> orders equal priorities first-come first-served.
/// Jobs with the same non-null <see cref="FusionKey"/> may share one device as a fused array.
/// </summary>
public sealed record PendingJob(string JobId, int Priority, long SubmitSequence, int Devices, string? FusionKey = null, long MemoryBytes = 0);

/// <summary>A healthy node as the scheduler sees it: the devices it has free right now, and each device's memory.</summary>
public sealed record NodeCapacity(string NodeId, IReadOnlyList<string> FreeDevices, long DeviceMemoryBytes = long.MaxValue);

/// <summary>Jobs placed together: one job on its devices, or the members of a fused array on one device.</summary>
public sealed record Placement(IReadOnlyList<string> JobIds, string NodeId, IReadOnlyList<string> Devices)
{
    public string JobId => JobIds[0];
    public bool IsArray => JobIds.Count > 1;
}

/// <summary>
/// The placement policy, a pure function of (queue, nodes). The scheduler grain calls it, and so can a
/// benchmark or a simulator, without Orleans.
/// </summary>
public interface ISchedulingPolicy
{
    IReadOnlyList<Placement> Place(IReadOnlyList<PendingJob> queue, IReadOnlyList<NodeCapacity> nodes);
}

/// <summary>
/// Priority first, then submission order; each job goes to the node with the fewest free devices that still
/// fits it (best fit), which keeps whole nodes free for multi-device jobs. A job that fits nowhere is skipped,
/// and later, smaller jobs may still start (no head-of-line blocking).
/// A fusable job takes with it, onto its device, the next waiting jobs with its fusion key (in queue order), up to
/// <see cref="MaxArrayWidth"/> members and as many as the device's memory holds.
/// </summary>
public sealed class PriorityBestFitPolicy(int maxArrayWidth = PriorityBestFitPolicy.DefaultMaxArrayWidth) : ISchedulingPolicy
{
    public const int DefaultMaxArrayWidth = 8;

    public int MaxArrayWidth { get; } = maxArrayWidth >= 1 ? maxArrayWidth : throw new ArgumentOutOfRangeException(nameof(maxArrayWidth), "must be at least 1");

    public IReadOnlyList<Placement> Place(IReadOnlyList<PendingJob> queue, IReadOnlyList<NodeCapacity> nodes)
    {
        var placements = new List<Placement>();
        if (queue.Count == 0 || nodes.Count == 0) return placements;
        var free = new FreeDeviceIndex(nodes);
        var ordered = queue.OrderByDescending(j => j.Priority).ThenBy(j => j.SubmitSequence).ToList();
        var placed = new HashSet<string>();
        var byKey = ordered.Where(j => j.FusionKey is not null && j.Devices == 1).GroupBy(j => j.FusionKey!)
            .ToDictionary(g => g.Key, g => new Queue<PendingJob>(g));
        foreach (var job in ordered)
        {
            if (placed.Contains(job.JobId)) continue;
            if (free.MaxFree == 0) break;
            if (free.TryTake(job.Devices, job.MemoryBytes) is not { } taken) continue;
            var members = new List<string> { job.JobId };
            placed.Add(job.JobId);
            if (job.FusionKey is { } key && job.Devices == 1)
            {
                var width = job.MemoryBytes > 0 ? (int)Math.Min(MaxArrayWidth, taken.DeviceMemory / job.MemoryBytes) : MaxArrayWidth;
                var candidates = byKey[key];
                while (members.Count < width && candidates.Count > 0)
                {
                    var next = candidates.Dequeue();
                    if (placed.Add(next.JobId)) members.Add(next.JobId);
                }
            }
            placements.Add(new Placement(members, taken.NodeId, taken.Devices));
        }
        return placements;
    }

    /// <summary>Nodes bucketed by free-device count, so best fit costs O(devices per node), not O(nodes).</summary>
    sealed class FreeDeviceIndex
    {
        readonly List<List<int>> _byFree = [];
        readonly List<NodeCapacity> _nodes = [];
        readonly List<Queue<string>> _devices = [];

        public FreeDeviceIndex(IReadOnlyList<NodeCapacity> nodes)
        {
            // Buckets are taken from their end (O(1)); adding in reverse makes equal nodes go in the order given.
            for (int i = nodes.Count - 1; i >= 0; i--)
            {
                var n = nodes[i];
                if (n.FreeDevices.Count == 0) continue;
                _nodes.Add(n);
                _devices.Add(new Queue<string>(n.FreeDevices));
                Bucket(n.FreeDevices.Count).Add(_nodes.Count - 1);
            }
        }

        public int MaxFree
        {
            get
            {
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
            for (int f = count; f < _byFree.Count; f++)
            {
                var bucket = _byFree[f];
                // Skip nodes whose devices are too small for the job.
                var at = bucket.FindLastIndex(n => _nodes[n].DeviceMemoryBytes >= memoryPerDevice);
                if (at < 0) continue;
                var node = bucket[at];
                bucket.RemoveAt(at);
                var devices = new List<string>(count);
                for (int i = 0; i < count; i++) devices.Add(_devices[node].Dequeue());
                if (f - count > 0) Bucket(f - count).Add(node);
                return (_nodes[node].NodeId, devices, _nodes[node].DeviceMemoryBytes);
            }
            return null;
        }
    }
}
