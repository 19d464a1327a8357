using System.Text;

namespace Orchestrator.Core.Data;

/// <summary>
/// Reads lines of a text file, refusing any longer than a limit before it is held in memory: a data file that is not
/// what its name says (a binary file, <c>/dev/zero</c>) fails with its line number instead of filling the memory
/// with one endless line, as <see cref="TextReader.ReadLine"/> would.
/// </summary>
public sealed class BoundedLineReader(TextReader reader, int maxLineChars, string source) : IDisposable
{
    readonly char[] _buffer = new char[64 * 1024];
    int _start, _end;

    /// <summary>Lines read so far (the number of the last one returned).</summary>
    public long LineNumber { get; private set; }

    /// <summary>The next line without its line break, or null at the end of the file.</summary>
    /// <exception cref="InvalidDataException">The line is longer than the limit.</exception>
    public string? ReadLine()
    {
        StringBuilder? partial = null;
        while (true)
        {
            if (_start == _end)
            {
                (_start, _end) = (0, reader.Read(_buffer, 0, _buffer.Length));
                if (_end == 0)
                {
                    if (partial is null) return null;
                    LineNumber++;
                    return partial.ToString();
                }
            }
            var available = _buffer.AsSpan(_start, _end - _start);
            var newline = available.IndexOf('\n');
            var piece = newline < 0 ? available : available[..newline];
            if ((partial?.Length ?? 0) + piece.Length > maxLineChars)
                throw new InvalidDataException($"{source}:{LineNumber + 1}: a line longer than {maxLineChars} characters; is this the right file?");
            if (newline < 0)
            {
                (partial ??= new StringBuilder()).Append(piece);
                _start = _end;
                continue;
            }
            _start += newline + 1;
            LineNumber++;
            var line = partial is null ? new string(piece) : partial.Append(piece).ToString();
            return line.EndsWith('\r') ? line[..^1] : line;
        }
    }

    public void Dispose() => reader.Dispose();
}
