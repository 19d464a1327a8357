using System.Globalization;
using System.Text.Json;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

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

/// <summary>Reads YAML or JSON text into a <see cref="SpecNode"/> tree, with limits against hostile input.</summary>
public static class SpecDocument
{
    public const int MaxDocumentBytes = 1 << 20;
    public const int MaxDepth = 32;

    public static SpecNode Parse(string text)
    {
        if (System.Text.Encoding.UTF8.GetByteCount(text) > MaxDocumentBytes)
            throw new SpecFormatException($"the document is larger than {MaxDocumentBytes / 1024} KiB; a job spec is a few hundred bytes, check that the right file was given");
        var trimmed = text.TrimStart('\uFEFF', ' ', '\t', '\r', '\n');
        return trimmed.StartsWith('{') || trimmed.StartsWith('[') ? ParseJson(text) : ParseYaml(text);
    }

    static SpecNode ParseJson(string text)
    {
        try
        {
            using var doc = JsonDocument.Parse(text, new JsonDocumentOptions { MaxDepth = MaxDepth, CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
            return FromJson(doc.RootElement);
        }
        catch (JsonException e)
        {
            throw new SpecFormatException($"invalid JSON at line {e.LineNumber + 1}, position {e.BytePositionInLine + 1}: {e.Message.Split(" LineNumber")[0]}");
        }
    }

    static SpecNode FromJson(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => new SpecMap(ObjectEntries(e)),
        JsonValueKind.Array => new SpecList(e.EnumerateArray().Select(FromJson).ToList()),
        JsonValueKind.String => new SpecScalar(e.GetString(), Quoted: true),
        JsonValueKind.Null => new SpecScalar(null, Quoted: false),
        _ => new SpecScalar(e.GetRawText(), Quoted: false),
    };

    static List<KeyValuePair<string, SpecNode>> ObjectEntries(JsonElement e)
    {
        var entries = new List<KeyValuePair<string, SpecNode>>();
        foreach (var p in e.EnumerateObject())
        {
            if (entries.Any(x => x.Key == p.Name)) throw new SpecFormatException($"duplicate key '{p.Name}'");
            entries.Add(new(p.Name, FromJson(p.Value)));
        }
        return entries;
    }

    static SpecNode ParseYaml(string text)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
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
        if (stream.Documents.Count == 0) return new SpecMap([]);
        if (stream.Documents.Count > 1) throw new SpecFormatException("the file holds several YAML documents; give one job spec per file (use --sweep for variations)");
        return FromYaml(stream.Documents[0].RootNode, 0);
    }

    static SpecNode FromYaml(YamlNode node, int depth)
    {
        if (depth > MaxDepth) throw new SpecFormatException($"the document is nested deeper than {MaxDepth} levels");
        var where = $"line {node.Start.Line}, column {node.Start.Column}";
        switch (node)
        {
            case YamlMappingNode map:
                var entries = new List<KeyValuePair<string, SpecNode>>();
                foreach (var (k, v) in map.Children)
                {
                    if (k is not YamlScalarNode ks || ks.Value is null) throw new SpecFormatException($"a key at {where} is not a plain name");
                    if (entries.Any(x => x.Key == ks.Value)) throw new SpecFormatException($"duplicate key '{ks.Value}' at line {k.Start.Line}");
                    entries.Add(new(ks.Value, FromYaml(v, depth + 1)));
                }
                return new SpecMap(entries) { Location = where };
            case YamlSequenceNode seq:
                return new SpecList(seq.Children.Select(c => FromYaml(c, depth + 1)).ToList()) { Location = where };
            case YamlScalarNode s:
                return new SpecScalar(s.Value, s.Style is ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted or ScalarStyle.Literal or ScalarStyle.Folded) { Location = where };
            default:
                throw new SpecFormatException($"unsupported YAML node at {where} (aliases and tags are not allowed in job specs)");
        }
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
