using Orchestrator.Core.Reliability;

namespace Orchestrator.Core.Collectives;

/// <summary>
/// What the collective algorithms need from a data plane: tagged frames between the ranks of one membership epoch,
/// in order per (peer, step, tag). The worker's transport is TCP (<see cref="Orchestrator.Core.DataPlane.TcpRankTransport"/>); tests may
/// run the algorithms over an in-memory one.
/// </summary>
public interface IRankTransport
{
    int Rank { get; }
    int Size { get; }

    ValueTask Send(int peer, long step, int tag, ReadOnlyMemory<byte> payload, CancellationToken ct = default);

    /// <summary>Receives the frame with this step and tag from <paramref name="peer"/> into <paramref name="destination"/>
    /// (exactly its length); a peer that fails or stays silent past the deadline raises <see cref="PeerFailedException"/>.</summary>
    ValueTask Receive(int peer, long step, int tag, Memory<byte> destination, CancellationToken ct = default);
}

/// <summary>A peer failed, timed out or spoke for another membership epoch: the membership must change. <see cref="Failure"/> says how.</summary>
public sealed class PeerFailedException(int peer, PeerFailure failure, string message, Exception? inner = null) : Exception(message, inner)
{
    public int Peer { get; } = peer;
    public PeerFailure Failure { get; } = failure;
}

