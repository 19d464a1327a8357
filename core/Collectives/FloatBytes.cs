using System.Buffers;
using System.Runtime.InteropServices;

namespace Orchestrator.Core.Collectives;

/// <summary>A float array region seen as raw little-endian bytes, so tensors go to sockets without a copy.</summary>
public sealed class FloatBytes(float[] array, int offset, int count) : MemoryManager<byte>
{
    public static Memory<byte> Of(float[] array, int offset, int count) => new FloatBytes(array, offset, count).Memory;

    public override Span<byte> GetSpan() => MemoryMarshal.AsBytes(array.AsSpan(offset, count));

    public override MemoryHandle Pin(int elementIndex = 0)
    {
        var handle = GCHandle.Alloc(array, GCHandleType.Pinned);
        unsafe
        {
            var start = (byte*)handle.AddrOfPinnedObject() + offset * sizeof(float) + elementIndex;
            return new MemoryHandle(start, handle, this);
        }
    }

    public override void Unpin() { }

    protected override void Dispose(bool disposing) { }
}
