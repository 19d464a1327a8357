using System.Security.Cryptography;
using System.Text.RegularExpressions;

namespace Orchestrator.Core.Checkpoints;

/// <summary>A checkpoint as the store holds it: its key (relative to the store), size and SHA-256 (lowercase hex).</summary>
public sealed record StoredCheckpoint(string Key, long Bytes, string Sha256);

/// <summary>A file under a job's folder in the store, for retention and orphan cleanup.</summary>
public sealed record StoredFile(string Key, long Bytes, DateTime ModifiedUtc, bool Partial);

/// <summary>A checkpoint that is missing, of the wrong size, or does not hash to what its reference says.</summary>
public sealed class CheckpointUnreadableException(string message, Exception? inner = null) : IOException(message, inner);

/// <summary>
/// Where training checkpoints live, outside the control plane: content-addressed (named by their SHA-256), written in
/// chunks, verified on every read, kept per job. Grains hold only references (<see cref="StoredCheckpoint"/>), so a
/// checkpoint's size is bounded by the store, not by a message or a Redis value. <see cref="FileCheckpointStore"/>
/// is a directory (a local one for one machine, a shared volume for a cluster); an S3-compatible object store
/// (PUT of parts, GET with a checksum) fits the same interface.
/// </summary>
public interface ICheckpointStore
{
    /// <summary>Where the store is, for messages ("directory /var/lib/orchestrator/checkpoints").</summary>
    string Location { get; }

    /// <summary>Writes a job's checkpoint of <paramref name="step"/>; returns its reference once it is durable.</summary>
    Task<StoredCheckpoint> Write(string jobId, long step, ReadOnlyMemory<byte> data, CancellationToken ct = default);

    /// <summary>Reads a checkpoint and verifies its size and hash before returning it.</summary>
    /// <exception cref="CheckpointUnreadableException">Missing, resized or altered.</exception>
    Task<byte[]> Read(StoredCheckpoint checkpoint, CancellationToken ct = default);

    /// <summary>The jobs that have a folder in the store.</summary>
    IReadOnlyList<string> Jobs();

    /// <summary>A job's files (checkpoints, and partial writes that never finished).</summary>
    IReadOnlyList<StoredFile> Files(string jobId);

    void Delete(string key);

    /// <summary>Deletes a job's folder with everything in it.</summary>
    void DeleteJob(string jobId);
}

/// <summary>
/// A checkpoint store in a directory: <c>ROOT/JOB/STEP-SHA256.ckpt</c>. A write goes to a partial file in the job's
/// folder, chunk by chunk while hashing, is flushed to disk, and is then renamed to its final name, so a reader
/// never sees half a checkpoint and a crash leaves only a partial file (removed by cleanup). Keys from references
/// are checked against that pattern, so a reference cannot name a file outside the store.
/// </summary>
public sealed partial class FileCheckpointStore : ICheckpointStore
{
    const int ChunkBytes = 4 << 20;
    const string PartialPrefix = ".partial-";
    readonly string _root;

    /// <param name="root">The directory (created if missing).</param>
    /// <param name="maxBytes">The largest checkpoint written or read: a reference claiming more is refused before
    /// anything is allocated.</param>
    public FileCheckpointStore(string root, long maxBytes = int.MaxValue)
    {
        _root = Path.GetFullPath(root);
        MaxBytes = maxBytes;
        Directory.CreateDirectory(_root);
    }

    public long MaxBytes { get; }
    public string Location => $"directory {_root}";

    /// <summary>Writes and removes a small file, so that a store that cannot be written fails at start-up, not at the
    /// first checkpoint.</summary>
    public void Probe()
    {
        var probe = Path.Combine(_root, PartialPrefix + "probe-" + Guid.NewGuid().ToString("n"));
        File.WriteAllBytes(probe, [1]);
        File.Delete(probe);
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9-]{0,127}$")] private static partial Regex JobIdPattern();
    [GeneratedRegex("^([a-z0-9][a-z0-9-]{0,127})/([0-9]{12})-([0-9a-f]{64})\\.ckpt$")] private static partial Regex KeyPattern();

    string JobFolder(string jobId) =>
        JobIdPattern().IsMatch(jobId) ? Path.Combine(_root, jobId) : throw new ArgumentException($"'{jobId}' is not a job id", nameof(jobId));

    string PathOf(string key) =>
        KeyPattern().IsMatch(key) ? Path.Combine(_root, key) : throw new CheckpointUnreadableException($"'{key}' is not a checkpoint key of this store");

    public async Task<StoredCheckpoint> Write(string jobId, long step, ReadOnlyMemory<byte> data, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        if (data.Length > MaxBytes) throw new ArgumentException($"a checkpoint of {data.Length} bytes is larger than the store's limit of {MaxBytes}");
        var folder = JobFolder(jobId);
        Directory.CreateDirectory(folder);
        var partial = Path.Combine(folder, PartialPrefix + Guid.NewGuid().ToString("n"));
        string sha;
        try
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            await using (var file = new FileStream(partial, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.Asynchronous))
            {
                for (int at = 0; at < data.Length; at += ChunkBytes)
                {
                    var chunk = data.Slice(at, Math.Min(ChunkBytes, data.Length - at));
                    hash.AppendData(chunk.Span);
                    await file.WriteAsync(chunk, ct);
                }
                file.Flush(flushToDisk: true);
            }
            sha = Convert.ToHexStringLower(hash.GetHashAndReset());
            var key = $"{jobId}/{step:D12}-{sha}.ckpt";
            // Same name, same bytes (content-addressed): a checkpoint written twice is kept once.
            File.Move(partial, PathOf(key), overwrite: true);
            return new StoredCheckpoint(key, data.Length, sha);
        }
        finally
        {
            if (File.Exists(partial)) File.Delete(partial);
        }
    }

    public async Task<byte[]> Read(StoredCheckpoint checkpoint, CancellationToken ct = default)
    {
        var path = PathOf(checkpoint.Key);
        if (checkpoint.Bytes < 0 || checkpoint.Bytes > MaxBytes)
            throw new CheckpointUnreadableException($"checkpoint {checkpoint.Key} claims {checkpoint.Bytes} bytes; this store reads at most {MaxBytes}");
        FileStream file;
        try { file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.Asynchronous | FileOptions.SequentialScan); }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new CheckpointUnreadableException($"checkpoint {checkpoint.Key} is not in the {Location}: do all workers share the same --checkpoint-dir?", e);
        }
        await using (file)
        {
            if (file.Length != checkpoint.Bytes)
                throw new CheckpointUnreadableException($"checkpoint {checkpoint.Key} has {file.Length} bytes, its reference says {checkpoint.Bytes}");
            var data = GC.AllocateUninitializedArray<byte>((int)checkpoint.Bytes);
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            for (int at = 0; at < data.Length;)
            {
                var read = await file.ReadAsync(data.AsMemory(at, Math.Min(ChunkBytes, data.Length - at)), ct);
                if (read == 0) throw new CheckpointUnreadableException($"checkpoint {checkpoint.Key} ended after {at} of {data.Length} bytes");
                hash.AppendData(data, at, read);
                at += read;
            }
            var sha = Convert.ToHexStringLower(hash.GetHashAndReset());
            if (sha != checkpoint.Sha256)
                throw new CheckpointUnreadableException($"checkpoint {checkpoint.Key} hashes to {sha}, its reference says {checkpoint.Sha256}: it was altered or damaged");
            return data;
        }
    }

    public IReadOnlyList<string> Jobs() =>
        Directory.EnumerateDirectories(_root).Select(Path.GetFileName).OfType<string>().Where(j => JobIdPattern().IsMatch(j)).Order().ToList();

    public IReadOnlyList<StoredFile> Files(string jobId)
    {
        var folder = JobFolder(jobId);
        if (!Directory.Exists(folder)) return [];
        return new DirectoryInfo(folder).EnumerateFiles()
            .Select(f => new StoredFile($"{jobId}/{f.Name}", f.Length, f.LastWriteTimeUtc, f.Name.StartsWith(PartialPrefix, StringComparison.Ordinal)))
            .OrderBy(f => f.Key, StringComparer.Ordinal).ToList();
    }

    public void Delete(string key)
    {
        // Partial files are named by the store itself; anything else must be a checkpoint key.
        var name = key.Split('/', 2);
        var path = name.Length == 2 && name[1].StartsWith(PartialPrefix, StringComparison.Ordinal) && !name[1].Contains('/')
            ? Path.Combine(JobFolder(name[0]), name[1])
            : PathOf(key);
        File.Delete(path);
    }

    public void DeleteJob(string jobId)
    {
        var folder = JobFolder(jobId);
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
    }
}
