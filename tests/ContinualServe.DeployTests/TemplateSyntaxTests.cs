using System.Text.RegularExpressions;
using Shouldly;
using Xunit;

namespace ContinualServe.DeployTests;

/// <summary>
/// Structural checks of the Go templates, read as text: a block without its end, and a nindent that does not
/// match the line's indentation. A failure here names the line, where helm's parse error often does not.
/// </summary>
public sealed partial class TemplateSyntaxTests
{
    [Fact]
    public void TemplateBlocksAreClosed()
    {
        List<string> problems = Directory.GetFiles(ChartFiles.TemplatesDirectory)
            .SelectMany(path => UnbalancedBlocks(File.ReadAllText(path)).Select(problem => $"{Path.GetFileName(path)}: {problem}"))
            .ToList();

        problems.ShouldBeEmpty();
    }

    [Theory]
    [InlineData("{{- if .Values.a }}\nx: 1\n", "line 1: {{ if }} has no {{ end }}")]
    [InlineData("x: 1\n{{- end }}\n", "line 2: {{ end }} closes no block")]
    [InlineData("{{- else }}\n", "line 1: {{ else }} outside a block")]
    [InlineData("{{- define \"a\" -}}\n{{- with .b }}\n{{- end }}\n", "line 1: {{ define }} has no {{ end }}")]
    public void UnclosedBlockIsReported(string template, string expected)
    {
        UnbalancedBlocks(template).ShouldBe([expected]);
    }

    [Fact]
    public void ClosedBlocksPass()
    {
        const string template = """
            {{/* A comment with if and end in it. */}}
            {{- define "a" -}}
            {{- if .Values.a }}
            a: {{ .Values.a | quote }}
            {{- else if .Values.b }}
            {{- range .Values.b }}
            - {{ . }}
            {{- end }}
            {{- else }}
            {{- with .Values.c }}{{ . }}{{ end }}
            {{- end }}
            {{- end }}
            """;

        UnbalancedBlocks(template).ShouldBeEmpty();
    }

    [Fact]
    public void NindentMatchesLineIndentation()
    {
        // Every nindent in the chart starts a line of its own at the indentation it produces, so the two must agree.
        List<string> problems = Directory.GetFiles(ChartFiles.TemplatesDirectory)
            .SelectMany(path => MismatchedNindents(File.ReadAllText(path)).Select(problem => $"{Path.GetFileName(path)}: {problem}"))
            .ToList();

        problems.ShouldBeEmpty();
    }

    [Fact]
    public void MismatchedNindentIsReported()
    {
        const string template = """
            env:
              {{- with include "continualserve.tlsEnv" . }}
              {{- . | nindent 4 }}
              {{- end }}
            """;

        MismatchedNindents(template).ShouldBe(["line 3: nindent 4 on a line indented by 2"]);
    }

    private static List<string> UnbalancedBlocks(string template)
    {
        var open = new Stack<(string Keyword, int Line)>();
        var problems = new List<string>();
        foreach (Match action in ActionPattern().Matches(template))
        {
            string body = action.Groups["body"].Value;
            if (body.StartsWith("/*", StringComparison.Ordinal))
            {
                continue;
            }

            string keyword = KeywordPattern().Match(body).Value;
            int line = LineOf(template, action.Index);
            switch (keyword)
            {
                case "if" or "with" or "range" or "define" or "block":
                    open.Push((keyword, line));
                    break;
                case "else" when open.Count == 0:
                    problems.Add($"line {line}: {{{{ else }}}} outside a block");
                    break;
                case "end" when open.Count == 0:
                    problems.Add($"line {line}: {{{{ end }}}} closes no block");
                    break;
                case "end":
                    open.Pop();
                    break;
            }
        }

        problems.AddRange(open.Reverse().Select(block => $"line {block.Line}: {{{{ {block.Keyword} }}}} has no {{{{ end }}}}"));
        return problems;
    }

    private static List<string> MismatchedNindents(string template)
    {
        string[] lines = template.Split('\n');
        var problems = new List<string>();
        for (int index = 0; index < lines.Length; index++)
        {
            Match nindent = NindentPattern().Match(lines[index]);
            if (!nindent.Success)
            {
                continue;
            }

            int expected = int.Parse(nindent.Groups["width"].Value, System.Globalization.CultureInfo.InvariantCulture);
            int indentation = lines[index].Length - lines[index].TrimStart(' ').Length;
            if (indentation != expected)
            {
                problems.Add($"line {index + 1}: nindent {expected} on a line indented by {indentation}");
            }
        }

        return problems;
    }

    private static int LineOf(string text, int index) => text.AsSpan(0, index).Count('\n') + 1;

    // One action: {{ ... }} with optional trim markers. The match ends at the first "}}", so a string literal that contains
    // "}}" would cut the action short. No template of the chart has one.
    [GeneratedRegex(@"\{\{-?\s*(?<body>.*?)\s*-?\}\}", RegexOptions.Singleline)]
    private static partial Regex ActionPattern();

    [GeneratedRegex(@"^[a-z]+")]
    private static partial Regex KeywordPattern();

    [GeneratedRegex(@"\|\s*nindent\s+(?<width>[0-9]+)")]
    private static partial Regex NindentPattern();
}
