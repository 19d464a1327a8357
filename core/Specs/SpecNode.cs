using System.Globalization;
using System.Text.Json;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace Orchestrator.Core.Specs;

/// <summary>
/// A format-neutral document tree (YAML and JSON read into the same shape), so that validation,
/// <c>--set</c> overrides and sweeps work on one representation whatever the user wrote.
/// </summary>
public abstract record SpecNode
{
    /// <summary>Where the node came from, for error messages ("line 4, column 7").</summary>
    public string? Location { get; init; }
}

public sealed record SpecMap(IReadOnlyList<KeyValuePair<string, SpecNode>> Entries) : SpecNode
{
    public SpecNode? Get(string key) => Entries.FirstOrDefault(e => e.Key == key).Value;

    public SpecMap With(string key, SpecNode value)
    {
        var list = Entries.Where(e => e.Key != key).ToList();
        list.Add(new(key, value));
        return this with { Entries = list };
    }
}

public sealed record SpecList(IReadOnlyList<SpecNode> Items) : SpecNode;

/// <summary>A scalar as written. <see cref="Quoted"/> distinguishes "1" (a string) from 1 (a number).</summary>
public sealed record SpecScalar(string? Text, bool Quoted) : SpecNode
{
    public bool IsNull => !Quoted && (Text is null || Text is "" or "~" or "null" or "Null" or "NULL");
}

public sealed class SpecFormatException(string message) : Exception(message);

/// <summary>
/// Reads YAML or JSON text into a <see cref="SpecNode"/> tree, with limits against hostile input enforced while
/// reading, before anything is built from it: document size, nesting depth and node count; YAML anchors, aliases and
/// tags are refused where they appear (an alias bomb never expands, a deep document never recurses).
/// </summary>
public static class SpecDocument
{
    public const int MaxDocumentBytes = 1 << 20;
    public const int MaxDepth = 32;
    /// <summary>Scalars, lists and maps in one document: a job spec has a few dozen.</summary>
    public const int MaxNodes = 10_000;

    public static SpecNode Parse(string text)
    {
        CheckSize(text);
        var trimmed = text.TrimStart('\uFEFF', ' ', '\t', '\r', '\n');
        return trimmed.StartsWith('{') || trimmed.StartsWith('[') ? ParseJson(text) : ParseYaml(text);
    }

    /// <summary>Reads a JSON object only: the form a spec crosses processes in (<see cref="JobSpecJson"/>).</summary>
    public static SpecNode ParseJsonObject(string text)
    {
        CheckSize(text);
        if (!text.TrimStart('\uFEFF', ' ', '\t', '\r', '\n').StartsWith('{'))
            throw new SpecFormatException("the cluster accepts a job spec only as a canonical JSON object; submit YAML through the CLI (orch submit), which converts it");
        return ParseJson(text);
    }

    static void CheckSize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        // Two bytes a char at least for anything but ASCII: count only when the length alone does not decide.
        if (text.Length > MaxDocumentBytes || (text.Length > MaxDocumentBytes / 4 && System.Text.Encoding.UTF8.GetByteCount(text) > MaxDocumentBytes))
            throw new SpecFormatException($"the document is larger than {MaxDocumentBytes / 1024} KiB; a job spec is a few hundred bytes, check that the right file was given");
    }

    static SpecNode ParseJson(string text)
    {
        try
        {
            // JsonDocument enforces the depth while it reads.
            using var doc = JsonDocument.Parse(text, new JsonDocumentOptions { MaxDepth = MaxDepth, CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
            var nodes = 0;
            return FromJson(doc.RootElement, ref nodes);
        }
        catch (JsonException e)
        {
            var why = e.Message.Split(" LineNumber")[0];
            if (why.Contains("maximum configured depth", StringComparison.Ordinal)) why = $"the document is nested deeper than {MaxDepth} levels";
            throw new SpecFormatException($"invalid JSON at line {e.LineNumber + 1}, position {e.BytePositionInLine + 1}: {why}");
        }
    }

    static SpecNode FromJson(JsonElement e, ref int nodes)
    {
        if (++nodes > MaxNodes) throw TooManyNodes();
        switch (e.ValueKind)
        {
            case JsonValueKind.Object:
                var entries = new List<KeyValuePair<string, SpecNode>>();
                var keys = new HashSet<string>(StringComparer.Ordinal);
                foreach (var p in e.EnumerateObject())
                {
                    if (!keys.Add(p.Name)) throw new SpecFormatException($"duplicate key '{Truncate(p.Name)}'");
                    entries.Add(new(p.Name, FromJson(p.Value, ref nodes)));
                }
                return new SpecMap(entries);
            case JsonValueKind.Array:
                var items = new List<SpecNode>();
                foreach (var item in e.EnumerateArray()) items.Add(FromJson(item, ref nodes));
                return new SpecList(items);
            case JsonValueKind.String: return new SpecScalar(e.GetString(), Quoted: true);
            case JsonValueKind.Null: return new SpecScalar(null, Quoted: false);
            default: return new SpecScalar(e.GetRawText(), Quoted: false);
        }
    }

    static SpecFormatException TooManyNodes() =>
        new($"the document has more than {MaxNodes} values; a job spec has a few dozen, check that the right file was given");

    /// <summary>A list or map being read: its items, or its entries and the key waiting for its value.</summary>
    sealed class Open(bool isMap, string where)
    {
        public readonly bool IsMap = isMap;
        public readonly string Where = where;
        public readonly List<SpecNode> Items = [];
        public readonly List<KeyValuePair<string, SpecNode>> Entries = [];
        public readonly HashSet<string> Keys = new(StringComparer.Ordinal);
        public string? PendingKey;
    }

    /// <summary>YAML through the parser's event stream (no representation tree, no recursion): every limit is checked at
    /// the event that would break it.</summary>
    static SpecNode ParseYaml(string text)
    {
        var parser = new Parser(new StringReader(text));
        var open = new Stack<Open>();
        SpecNode? root = null;
        int documents = 0, nodes = 0;
        try
        {
            while (parser.MoveNext())
            {
                var e = parser.Current!;
                var where = $"line {e.Start.Line}, column {e.Start.Column}";
                switch (e)
                {
                    case DocumentStart:
                        if (++documents > 1) throw new SpecFormatException("the file holds several YAML documents; give one job spec per file (use --sweep for variations)");
                        break;
                    case AnchorAlias:
                        throw new SpecFormatException($"an alias (*name) at {where}: anchors and aliases are not allowed (a small document never needs them, a hostile one expands them a billion-fold); write the value out");
                    case NodeEvent n when !n.Anchor.IsEmpty:
                        throw new SpecFormatException($"an anchor (&{Truncate(n.Anchor.Value)}) at {where}: anchors and aliases are not allowed (a small document never needs them, a hostile one expands them a billion-fold); write the value out");
                    case NodeEvent n when !n.Tag.IsEmpty:
                        throw new SpecFormatException($"a tag ({Truncate(n.Tag.Value)}) at {where}: tags are not allowed; write the plain value");
                    case MappingStart or SequenceStart:
                        if (open.Count >= MaxDepth) throw new SpecFormatException($"the document is nested deeper than {MaxDepth} levels (at {where})");
                        if (++nodes > MaxNodes) throw TooManyNodes();
                        if (open.TryPeek(out var parent) && parent.IsMap && parent.PendingKey is null)
                            throw new SpecFormatException($"a key at {where} is not a plain name");
                        open.Push(new Open(e is MappingStart, where));
                        break;
                    case Scalar s:
                        if (++nodes > MaxNodes) throw TooManyNodes();
                        if (open.TryPeek(out var owner) && owner.IsMap && owner.PendingKey is null)
                        {
                            if (!owner.Keys.Add(s.Value)) throw new SpecFormatException($"duplicate key '{Truncate(s.Value)}' at line {s.Start.Line}");
                            owner.PendingKey = s.Value;
                            break;
                        }
                        Add(open, ref root, new SpecScalar(s.Value, s.Style is ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted or ScalarStyle.Literal or ScalarStyle.Folded) { Location = where });
                        break;
                    case MappingEnd or SequenceEnd:
                        var done = open.Pop();
                        Add(open, ref root, done.IsMap ? new SpecMap(done.Entries) { Location = done.Where } : new SpecList(done.Items) { Location = done.Where });
                        break;
                }
            }
        }
        catch (YamlException e)
        {
            var inner = e.InnerException is { } i ? $" ({i.Message})" : "";
            throw new SpecFormatException($"invalid YAML at line {e.Start.Line}, column {e.Start.Column}: {e.Message}{inner}");
        }
        catch (InvalidOperationException e)
        {
            // YamlDotNet reports some unterminated flow collections this way.
            throw new SpecFormatException($"invalid YAML: {e.Message} (check for an unclosed {{ or [)");
        }
        return root ?? new SpecMap([]);
    }

    static void Add(Stack<Open> open, ref SpecNode? root, SpecNode node)
    {
        if (!open.TryPeek(out var parent))
        {
            root = node;
            return;
        }
        if (!parent.IsMap)
        {
            parent.Items.Add(node);
            return;
        }
        parent.Entries.Add(new(parent.PendingKey!, node));
        parent.PendingKey = null;
    }

    /// <summary>Sets a dotted path ("train.lr") to a value written as on a command line, creating maps as needed.</summary>
    public static SpecNode SetPath(SpecNode root, string dottedPath, string valueText)
    {
        var parts = dottedPath.Split('.');
        if (parts.Any(string.IsNullOrWhiteSpace)) throw new SpecFormatException($"'{dottedPath}' is not a field path; write it like train.lr");
        return Set(root as SpecMap ?? new SpecMap([]), parts, 0, ParseValue(valueText));
    }

    static SpecMap Set(SpecMap map, string[] parts, int i, SpecNode value)
    {
        if (i == parts.Length - 1) return map.With(parts[i], value);
        var child = map.Get(parts[i]) as SpecMap ?? new SpecMap([]);
        return map.With(parts[i], Set(child, parts, i + 1, value));
    }

    /// <summary>A command-line value is read as a YAML flow scalar or list: "0.1", "[256,128]", "sgd".</summary>
    static SpecNode ParseValue(string text)
    {
        var t = text.Trim();
        if (t.StartsWith('[')) return ParseYaml(t);
        return new SpecScalar(t, Quoted: false);
    }

    public static string Describe(SpecNode node) => node switch
    {
        SpecMap => "a map",
        SpecList => "a list",
        SpecScalar { IsNull: true } => "null",
        SpecScalar s => $"'{Truncate(s.Text)}'",
        _ => "a value",
    };

    internal static string Truncate(string? s) => s is null ? "" : s.Length <= 40 ? s : s[..40] + "…";

    internal static bool TryDouble(string? s, out double d) =>
        double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out d);
}
