namespace Orchestrator.Core.Scheduling;

/// <summary>A job waiting for devices. <see cref="SubmitSequence"/> orders equal priorities first-come first-served.</summary>
public sealed record PendingJob(string JobId, int Priority, long SubmitSequence, int Devices);

/// <summary>A healthy node as the scheduler sees it: the devices it has free right now.</summary>
public sealed record NodeCapacity(string NodeId, IReadOnlyList<string> FreeDevices);

public sealed record Placement(string JobId, string NodeId, IReadOnlyList<string> Devices);

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
/// </summary>
public sealed class PriorityBestFitPolicy : ISchedulingPolicy
{
    public IReadOnlyList<Placement> Place(IReadOnlyList<PendingJob> queue, IReadOnlyList<NodeCapacity> nodes)
    {
        var placements = new List<Placement>();
        if (queue.Count == 0 || nodes.Count == 0) return placements;
        var free = new FreeDeviceIndex(nodes);
        foreach (var job in queue.OrderByDescending(j => j.Priority).ThenBy(j => j.SubmitSequence))
        {
            if (free.MaxFree == 0) break;
            if (free.TryTake(job.Devices) is { } taken) placements.Add(new Placement(job.JobId, taken.NodeId, taken.Devices));
        }
        return placements;
    }

    /// <summary>Nodes bucketed by free-device count, so best fit costs O(devices per node), not O(nodes).</summary>
    sealed class FreeDeviceIndex
    {
        readonly List<Stack<int>> _byFree = [];
        readonly List<Queue<string>> _devices = [];
        readonly List<string> _ids = [];

        public FreeDeviceIndex(IReadOnlyList<NodeCapacity> nodes)
        {
            foreach (var n in nodes)
            {
                if (n.FreeDevices.Count == 0) continue;
                _ids.Add(n.NodeId);
                _devices.Add(new Queue<string>(n.FreeDevices));
                Bucket(n.FreeDevices.Count).Push(_ids.Count - 1);
            }
            // Stacks pop the last pushed; reverse so that equal nodes are used in the order given.
            for (int i = 0; i < _byFree.Count; i++) _byFree[i] = new Stack<int>(_byFree[i]);
        }

        public int MaxFree
        {
            get
            {
                for (int f = _byFree.Count - 1; f > 0; f--) if (_byFree[f].Count > 0) return f;
                return 0;
            }
        }

        Stack<int> Bucket(int free)
        {
            while (_byFree.Count <= free) _byFree.Add(new Stack<int>());
            return _byFree[free];
        }

        public (string NodeId, IReadOnlyList<string> Devices)? TryTake(int count)
        {
            for (int f = count; f < _byFree.Count; f++)
            {
                if (_byFree[f].Count == 0) continue;
                var node = _byFree[f].Pop();
                var devices = new List<string>(count);
                for (int i = 0; i < count; i++) devices.Add(_devices[node].Dequeue());
                if (f - count > 0) Bucket(f - count).Push(node);
                return (_ids[node], devices);
            }
            return null;
        }
    }
}
