using System.Collections.Generic;

namespace Lora.Peft;

/// <summary>
/// The top-level alternatives of a target regex (<c>"q_proj|v_proj"</c> → q_proj, v_proj): split at each <c>|</c>
/// outside groups and character classes and not escaped; a pattern without one gives itself. One source for the
/// source generator (compiled into it as a linked file: LORA0025) and the runtime (<c>TargetModules.Unmatched</c>,
/// the CLI's warning), so both read a pattern the same way; plain C# for netstandard2.0.
/// </summary>
internal static class RegexAlternatives
{
    public static IReadOnlyList<string> TopLevel(string pattern)
    {
        var parts = new List<string>();
        var depth = 0;
        var inClass = false;
        var start = 0;
        for (var i = 0; i < pattern.Length; i++)
        {
            switch (pattern[i])
            {
                case '\\':
                    i++; // the escaped character is literal
                    break;
                case '[' when !inClass:
                    inClass = true;
                    if (i + 1 < pattern.Length && pattern[i + 1] == ']')
                        i++; // "[]…]": a leading ] is literal
                    break;
                case ']' when inClass:
                    inClass = false;
                    break;
                case '(' when !inClass:
                    depth++;
                    break;
                case ')' when !inClass && depth > 0:
                    depth--;
                    break;
                case '|' when !inClass && depth == 0:
                    parts.Add(pattern.Substring(start, i - start));
                    start = i + 1;
                    break;
            }
        }

        parts.Add(pattern.Substring(start));
        return parts;
    }
}
