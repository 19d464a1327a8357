using System.Collections.Concurrent;
using Orchestrator.Core.Collectives;
using Orchestrator.Core.Reliability;

namespace Orchestrator.Tests.Infrastructure;

/// <summary>
/// N ranks of one membership whose data plane is memory: frames go through a shared mailbox keyed by sender,
/// receiver, step and tag. The collective algorithms run over it unchanged (they only know <see cref="IRankTransport"/>).
/// A rank listed in <paramref name="silent"/> never sends, so its peers' receives fail as a silent peer would.
/// </summary>
public sealed class InMemoryRanks(int size, TimeSpan receiveTimeout, IReadOnlySet<int>? silent = null)
{
    readonly ConcurrentDictionary<(int From, int To, long Step, int Tag), TaskCompletionSource<byte[]>> _frames = new();

    public int Size => size;
    TimeSpan ReceiveTimeout => receiveTimeout;
    bool IsSilent(int rank) => silent?.Contains(rank) == true;

    TaskCompletionSource<byte[]> Frame(int from, int to, long step, int tag) =>
        _frames.GetOrAdd((from, to, step, tag), _ => new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously));

    public IRankTransport Rank(int rank) => new Transport(this, rank);

    public async Task<T[]> Run<T>(Func<Collective, int, Task<T>> body) =>
        await Task.WhenAll(Enumerable.Range(0, size).Select(r => Task.Run(() => body(new Collective(Rank(r)), r))));

    sealed class Transport(InMemoryRanks ranks, int rank) : IRankTransport
    {
        public int Rank => rank;
        public int Size => ranks.Size;

        public ValueTask Send(int peer, long step, int tag, ReadOnlyMemory<byte> payload, CancellationToken ct = default)
        {
            if (!ranks.IsSilent(rank) && !ranks.Frame(rank, peer, step, tag).TrySetResult(payload.ToArray()))
                throw new InvalidOperationException($"rank {rank} sent step {step} tag {tag} to rank {peer} twice");
            return ValueTask.CompletedTask;
        }

        public async ValueTask Receive(int peer, long step, int tag, Memory<byte> destination, CancellationToken ct = default)
        {
            byte[] frame;
            try { frame = await ranks.Frame(peer, rank, step, tag).Task.WaitAsync(ranks.ReceiveTimeout, ct); }
            catch (TimeoutException) { throw new PeerFailedException(peer, PeerFailure.Silent, $"rank {rank}: nothing from rank {peer} for step {step} (tag {tag})"); }
            if (frame.Length != destination.Length)
                throw new PeerFailedException(peer, PeerFailure.BadFrame, $"rank {rank}: rank {peer} sent {frame.Length} bytes, expected {destination.Length}");
            frame.CopyTo(destination);
        }
    }
}
