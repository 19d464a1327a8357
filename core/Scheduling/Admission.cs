namespace Orchestrator.Core.Scheduling;

/// <summary>Why a job can never run on the cluster as it is.</summary>
public enum UnschedulableCause
{
    /// <summary>A data-parallel job needs more devices at once than the cluster has.</summary>
    TooManyDevices,
    /// <summary>A job needs more memory per device than the largest device has.</summary>
    DeviceTooSmall,
    /// <summary>A recommendation job's embedding tables need more memory per silo than a silo has.</summary>
    EmbeddingTooLarge,
}

/// <summary>What the cluster's healthy nodes offer at most (for admission; placement looks at what is free).</summary>
public sealed record ClusterShape(int Devices, long LargestDeviceMemoryBytes, string? LargestDeviceNode)
{
    public static readonly ClusterShape Unknown = new(0, 0, null);

    /// <summary>No node has reported yet: nothing can be judged against it.</summary>
    public bool IsUnknown => Devices == 0;

    public static ClusterShape Of(IEnumerable<(string Node, int Devices, long DeviceMemoryBytes)> nodes)
    {
        var list = nodes.Where(n => n.Devices > 0).ToList();
        if (list.Count == 0) return Unknown;
        var largest = list.MaxBy(n => n.DeviceMemoryBytes);
        return new ClusterShape(list.Sum(n => n.Devices), largest.DeviceMemoryBytes, largest.Node);
    }
}

/// <summary>A job the cluster cannot run: why, what it needs, and the most the cluster has (bytes or devices).</summary>
public sealed record AdmissionRefusal(UnschedulableCause Cause, long Needed, long Available, string? Where)
{
    public string Message => Cause switch
    {
        UnschedulableCause.TooManyDevices => $"needs {Needed} devices at once; the cluster has {Available}",
        UnschedulableCause.DeviceTooSmall => $"needs about {Gigabytes(Needed)} of memory per device; the largest device has {Gigabytes(Available)}{(Where is null ? "" : $" (node {Where})")}",
        _ => $"its embedding tables need about {Gigabytes(Needed)} per silo; {(Where is null ? "a silo" : $"silo {Where}")} has {Gigabytes(Available)}",
    };

    static string Gigabytes(long bytes) => $"{bytes / 1e9:0.##} GB";
}

/// <summary>
/// Whether a job could ever run on the cluster: checked when it is submitted (it is refused, with the numbers) and
/// on every scheduler pass (a queued job the cluster shrank below becomes Unschedulable with the reason, and does
/// not hold back the jobs behind it; it waits again once the cluster can take it).
/// </summary>
public static class Admission
{
    public static AdmissionRefusal? Check(PendingJob job, ClusterShape shape)
    {
        if (shape.IsUnknown || job.Growth) return null;
        if (job.Devices > shape.Devices) return new AdmissionRefusal(UnschedulableCause.TooManyDevices, job.Devices, shape.Devices, null);
        if (job.MemoryBytes > shape.LargestDeviceMemoryBytes)
            return new AdmissionRefusal(UnschedulableCause.DeviceTooSmall, job.MemoryBytes, shape.LargestDeviceMemoryBytes, shape.LargestDeviceNode);
        return null;
    }

    /// <summary>
    /// At submission only what adding nodes cannot fix is refused: a device too small (or a silo, for embeddings). A
    /// job needing more devices than the cluster has now is accepted; it waits as Unschedulable until nodes join.
    /// </summary>
    public static AdmissionRefusal? CheckAtSubmission(PendingJob job, ClusterShape shape) =>
        Check(job, shape) is { Cause: not UnschedulableCause.TooManyDevices } refusal ? refusal : null;

    /// <summary>A recommendation job's embedding shards spread over the live silos: refused when one silo's share
    /// (tables, optimizer state and parity) is more than a silo's memory.</summary>
    public static AdmissionRefusal? CheckEmbedding(long embeddingBytes, int liveSilos, long siloMemoryBytes, string silo)
    {
        if (embeddingBytes <= 0 || liveSilos <= 0 || siloMemoryBytes <= 0) return null;
        var perSilo = (embeddingBytes + liveSilos - 1) / liveSilos;
        return perSilo > siloMemoryBytes ? new AdmissionRefusal(UnschedulableCause.EmbeddingTooLarge, perSilo, siloMemoryBytes, silo) : null;
    }
}
