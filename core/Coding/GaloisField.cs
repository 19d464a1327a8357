namespace Orchestrator.Core.Coding;

/// <summary>
/// Arithmetic in GF(2^8) with the polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11D), the field of most Reed–Solomon
/// codes. Addition is XOR; multiplication goes through log/exp tables and, for bulk work, a full 256×256 product
/// table, so multiplying a byte span by a constant is one table lookup per byte.
/// </summary>
public static class GaloisField
{
    const int Polynomial = 0x11D;
    static readonly byte[] Exp = new byte[512];
    static readonly byte[] Log = new byte[256];
    static readonly byte[] Products = new byte[256 * 256];

    static GaloisField()
    {
        int x = 1;
        for (int i = 0; i < 255; i++)
        {
            Exp[i] = (byte)x;
            Log[x] = (byte)i;
            x <<= 1;
            if ((x & 0x100) != 0) x ^= Polynomial;
        }
        for (int i = 255; i < Exp.Length; i++) Exp[i] = Exp[i - 255];
        for (int a = 0; a < 256; a++)
            for (int b = 0; b < 256; b++)
                Products[a * 256 + b] = a == 0 || b == 0 ? (byte)0 : Exp[Log[a] + Log[b]];
    }

    public static byte Multiply(byte a, byte b) => Products[a * 256 + b];

    public static byte Inverse(byte a) =>
        a == 0 ? throw new DivideByZeroException("0 has no inverse in GF(2^8)") : Exp[255 - Log[a]];

    public static byte Divide(byte a, byte b) => Multiply(a, Inverse(b));

    /// <summary>destination ^= c · source, byte by byte (c = 1 is a plain XOR).</summary>
    public static void MultiplyAdd(byte c, ReadOnlySpan<byte> source, Span<byte> destination)
    {
        if (source.Length != destination.Length) throw new ArgumentException("spans differ in length");
        if (c == 0) return;
        if (c == 1)
        {
            System.Numerics.Tensors.TensorPrimitives.Xor(source, destination, destination);
            return;
        }
        var row = Products.AsSpan(c * 256, 256);
        for (int i = 0; i < source.Length; i++) destination[i] ^= row[source[i]];
    }

    /// <summary>The inverse of a square matrix over GF(2^8) (Gauss–Jordan); throws if it is singular.</summary>
    public static byte[,] Invert(byte[,] matrix)
    {
        int n = matrix.GetLength(0);
        if (matrix.GetLength(1) != n) throw new ArgumentException("matrix is not square");
        var a = (byte[,])matrix.Clone();
        var inv = new byte[n, n];
        for (int i = 0; i < n; i++) inv[i, i] = 1;
        for (int col = 0; col < n; col++)
        {
            int pivot = col;
            while (pivot < n && a[pivot, col] == 0) pivot++;
            if (pivot == n) throw new InvalidOperationException("matrix is singular");
            if (pivot != col)
                for (int j = 0; j < n; j++)
                {
                    (a[col, j], a[pivot, j]) = (a[pivot, j], a[col, j]);
                    (inv[col, j], inv[pivot, j]) = (inv[pivot, j], inv[col, j]);
                }
            var scale = Inverse(a[col, col]);
            for (int j = 0; j < n; j++)
            {
                a[col, j] = Multiply(a[col, j], scale);
                inv[col, j] = Multiply(inv[col, j], scale);
            }
            for (int row = 0; row < n; row++)
            {
                if (row == col || a[row, col] == 0) continue;
                var factor = a[row, col];
                for (int j = 0; j < n; j++)
                {
                    a[row, j] ^= Multiply(factor, a[col, j]);
                    inv[row, j] ^= Multiply(factor, inv[col, j]);
                }
            }
        }
        return inv;
    }
}
