using System.Globalization;
using System.Text;

namespace Lora.Chat.Jinja;

internal enum TokenKind
{
    Data,
    VariableBegin,
    VariableEnd,
    BlockBegin,
    BlockEnd,
    Name,
    String,
    Integer,
    Float,
    Operator,
    End,
}

internal readonly record struct Token(TokenKind Kind, string Value, int Line)
{
    public bool Is(TokenKind kind, string value) => Kind == kind && Value == value;

    public bool IsOperator(string value) => Kind == TokenKind.Operator && Value == value;

    public bool IsName(string value) => Kind == TokenKind.Name && Value == value;

    public override string ToString() => Kind switch
    {
        TokenKind.End => "end of template",
        TokenKind.VariableEnd => "'}}'",
        TokenKind.BlockEnd => "'%}'",
        TokenKind.String => $"string '{Value}'",
        _ => $"'{Value}'",
    };
}

/// <summary>
/// Splits a template into data and tag tokens with Jinja2's whitespace rules as transformers configures them
/// (jinja2 <c>lexer.py</c>, <c>Lexer.tokeniter</c>; transformers <c>chat_template_utils._cached_compile_jinja_template</c>:
/// <c>trim_blocks=True, lstrip_blocks=True</c>):
/// <list type="bullet">
/// <item><c>trim_blocks</c>: the first newline after a block or comment tag (<c>%}</c>, <c>#}</c>) is removed; not after <c>}}</c>.</item>
/// <item><c>lstrip_blocks</c>: spaces and tabs from the start of a line up to a block or comment tag are removed when
/// nothing else precedes the tag on that line; <c>{%+</c> turns it off for one tag; never for <c>{{</c>.</item>
/// <item><c>{%-</c>, <c>{{-</c>, <c>{#-</c> remove all whitespace (newlines too) before the tag; <c>-%}</c>,
/// <c>-}}</c>, <c>-#}</c> all whitespace after it.</item>
/// <item><c>{% raw %}…{% endraw %}</c> is data.</item>
/// </list>
/// </summary>
internal static class Lexer
{
    public static List<Token> Tokenize(string source, string origin)
    {
        // jinja2 normalises line endings to "\n" and, with keep_trailing_newline=False (the default), drops one
        // trailing newline of the source.
        source = source.Replace("\r\n", "\n").Replace('\r', '\n');
        if (source.EndsWith('\n'))
        {
            source = source[..^1];
        }

        var tokens = new List<Token>();
        var pos = 0;
        var line = 1;
        var lineStarting = true; // jinja2's line_starting: the previous match ended with a newline (or none yet)
        var pendingData = new StringBuilder();

        while (pos < source.Length)
        {
            var start = FindTagStart(source, pos);
            var text = source[pos..(start < 0 ? source.Length : start)];
            if (start < 0)
            {
                Emit(tokens, text, ref line);
                break;
            }

            var kind = source[start + 1];
            var modifier = start + 2 < source.Length ? source[start + 2] : '\0';
            if (modifier == '-')
            {
                text = text.TrimEnd(' ', '\t', '\n', '\r', '\f', '\v');
            }
            else if (modifier != '+' && kind is '%' or '#')
            {
                // lstrip_blocks: drop the spaces/tabs that open the tag's line.
                var lineStart = text.LastIndexOf('\n') + 1;
                if ((lineStart > 0 || lineStarting) && text.AsSpan(lineStart).IndexOfAnyExcept(' ', '\t') < 0)
                {
                    text = text[..lineStart];
                }
            }

            line += Count(source, pos, start);
            Emit(tokens, text, ref line, countLines: false);
            var body = start + 2 + (modifier is '-' or '+' ? 1 : 0);

            if (kind == '#')
            {
                var close = source.IndexOf("#}", body, StringComparison.Ordinal);
                if (close < 0)
                {
                    throw new TemplateException($"{origin} line {line}: comment is not closed ('#}}' missing)", line);
                }

                var stripAfter = close > body && source[close - 1] == '-';
                line += Count(source, start, close + 2);
                pos = AfterTag(source, close + 2, stripAfter, trimBlock: true, ref line, out lineStarting);
                continue;
            }

            var isBlock = kind == '%';
            tokens.Add(new Token(isBlock ? TokenKind.BlockBegin : TokenKind.VariableBegin, isBlock ? "{%" : "{{", line));
            var (endAt, stripAfterTag) = LexExpression(source, body, isBlock ? '%' : '}', tokens, ref line, origin);
            tokens.Add(new Token(isBlock ? TokenKind.BlockEnd : TokenKind.VariableEnd, isBlock ? "%}" : "}}", line));
            pos = AfterTag(source, endAt, stripAfterTag, trimBlock: isBlock, ref line, out lineStarting);

            // {% raw %} ... {% endraw %}: everything between is data.
            if (isBlock && tokens.Count >= 3 && tokens[^2].IsName("raw") && tokens[^3].Kind == TokenKind.BlockBegin)
            {
                tokens.RemoveRange(tokens.Count - 3, 3);
                var match = System.Text.RegularExpressions.Regex.Match(source[pos..], @"\{%([-+]?)\s*endraw\s*(-?)%\}");
                if (!match.Success)
                {
                    throw new TemplateException($"{origin} line {line}: 'raw' block is not closed ('{{% endraw %}}' missing)", line);
                }

                var raw = source.Substring(pos, match.Index);
                if (match.Groups[1].Value == "-")
                {
                    raw = raw.TrimEnd();
                }

                Emit(tokens, raw, ref line);
                line += Count(source, pos + match.Index, pos + match.Index + match.Length);
                pos = AfterTag(source, pos + match.Index + match.Length, match.Groups[2].Value == "-", trimBlock: true, ref line, out lineStarting);
            }
        }

        tokens.Add(new Token(TokenKind.End, "", line));
        return tokens;
    }

    private static int FindTagStart(string source, int from)
    {
        for (var i = source.IndexOf('{', from); i >= 0 && i + 1 < source.Length; i = source.IndexOf('{', i + 1))
        {
            if (source[i + 1] is '{' or '%' or '#')
            {
                return i;
            }
        }

        return -1;
    }

    private static int AfterTag(string source, int pos, bool stripAfter, bool trimBlock, ref int line, out bool lineStarting)
    {
        var start = pos;
        if (stripAfter)
        {
            while (pos < source.Length && char.IsWhiteSpace(source[pos]))
            {
                pos++;
            }
        }
        else if (trimBlock && pos < source.Length && source[pos] == '\n')
        {
            pos++;
        }
        else if (trimBlock && pos + 1 < source.Length && source[pos] == '\r' && source[pos + 1] == '\n')
        {
            pos += 2;
        }

        line += Count(source, start, pos);
        lineStarting = pos > start && source[pos - 1] == '\n';
        return pos;
    }

    private static void Emit(List<Token> tokens, string text, ref int line, bool countLines = true)
    {
        if (text.Length > 0)
        {
            tokens.Add(new Token(TokenKind.Data, text, line));
        }

        if (countLines)
        {
            line += text.Count(c => c == '\n');
        }
    }

    private static int Count(string source, int from, int to)
    {
        var n = 0;
        for (var i = from; i < to; i++)
        {
            if (source[i] == '\n')
            {
                n++;
            }
        }

        return n;
    }

    private static readonly string[] Operators =
        ["**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=", "|", ".", ",", ":", "(", ")", "[", "]", "{", "}"];

    // Lexes the inside of {{ }} or {% %}; returns the index after the closing delimiter and whether it was '-…'.
    private static (int End, bool Strip) LexExpression(string s, int pos, char closer, List<Token> tokens, ref int line, string origin)
    {
        var depth = 0;
        while (true)
        {
            while (pos < s.Length && char.IsWhiteSpace(s[pos]))
            {
                if (s[pos] == '\n')
                {
                    line++;
                }

                pos++;
            }

            if (pos >= s.Length)
            {
                throw new TemplateException($"{origin} line {line}: tag is not closed ('{(closer == '%' ? "%}" : "}}")}' missing)", line);
            }

            if (depth == 0 && s[pos] == '-' && pos + 2 < s.Length + 0 && pos + 2 <= s.Length - 1 && s[pos + 1] == closer && s[pos + 2] == '}')
            {
                return (pos + 3, true);
            }

            if (depth == 0 && s[pos] == closer && pos + 1 < s.Length && s[pos + 1] == '}')
            {
                return (pos + 2, false);
            }

            var c = s[pos];
            if (char.IsLetter(c) || c == '_')
            {
                var start = pos;
                while (pos < s.Length && (char.IsLetterOrDigit(s[pos]) || s[pos] == '_'))
                {
                    pos++;
                }

                tokens.Add(new Token(TokenKind.Name, s[start..pos], line));
            }
            else if (char.IsAsciiDigit(c))
            {
                var start = pos;
                var isFloat = false;
                while (pos < s.Length && (char.IsAsciiDigit(s[pos]) || s[pos] == '_'))
                {
                    pos++;
                }

                if (pos + 1 < s.Length && s[pos] == '.' && char.IsAsciiDigit(s[pos + 1]))
                {
                    isFloat = true;
                    pos++;
                    while (pos < s.Length && (char.IsAsciiDigit(s[pos]) || s[pos] == '_'))
                    {
                        pos++;
                    }
                }

                if (pos < s.Length && s[pos] is 'e' or 'E')
                {
                    var save = pos;
                    pos++;
                    if (pos < s.Length && s[pos] is '+' or '-')
                    {
                        pos++;
                    }

                    if (pos < s.Length && char.IsAsciiDigit(s[pos]))
                    {
                        isFloat = true;
                        while (pos < s.Length && char.IsAsciiDigit(s[pos]))
                        {
                            pos++;
                        }
                    }
                    else
                    {
                        pos = save;
                    }
                }

                tokens.Add(new Token(isFloat ? TokenKind.Float : TokenKind.Integer, s[start..pos].Replace("_", ""), line));
            }
            else if (c is '\'' or '"')
            {
                var (value, end) = ReadString(s, pos, origin, line);
                line += Count(s, pos, end);
                pos = end;
                tokens.Add(new Token(TokenKind.String, value, line));
            }
            else
            {
                var op = Operators.FirstOrDefault(o => string.CompareOrdinal(s, pos, o, 0, o.Length) == 0)
                    ?? throw new TemplateException($"{origin} line {line}: unexpected character '{c}'", line);
                depth += op is "(" or "[" or "{" ? 1 : op is ")" or "]" or "}" ? -1 : 0;
                depth = Math.Max(depth, 0);
                tokens.Add(new Token(TokenKind.Operator, op, line));
                pos += op.Length;
            }
        }
    }

    // A Python string literal with its escapes (jinja2 unescapes string tokens like Python does).
    private static (string Value, int End) ReadString(string s, int pos, string origin, int line)
    {
        var quote = s[pos];
        var sb = new StringBuilder();
        var i = pos + 1;
        while (i < s.Length && s[i] != quote)
        {
            if (s[i] == '\\' && i + 1 < s.Length)
            {
                var e = s[i + 1];
                i += 2;
                switch (e)
                {
                    case 'n': sb.Append('\n'); break;
                    case 't': sb.Append('\t'); break;
                    case 'r': sb.Append('\r'); break;
                    case '0': sb.Append('\0'); break;
                    case 'b': sb.Append('\b'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'v': sb.Append('\v'); break;
                    case 'a': sb.Append('\a'); break;
                    case '\\': sb.Append('\\'); break;
                    case '\'': sb.Append('\''); break;
                    case '"': sb.Append('"'); break;
                    case '\n': break;
                    case 'x' when i + 2 <= s.Length:
                        sb.Append((char)int.Parse(s.AsSpan(i, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                        i += 2;
                        break;
                    case 'u' when i + 4 <= s.Length:
                        sb.Append((char)int.Parse(s.AsSpan(i, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                        i += 4;
                        break;
                    case 'U' when i + 8 <= s.Length:
                        sb.Append(char.ConvertFromUtf32(int.Parse(s.AsSpan(i, 8), NumberStyles.HexNumber, CultureInfo.InvariantCulture)));
                        i += 8;
                        break;
                    default: sb.Append('\\').Append(e); break;
                }
            }
            else
            {
                sb.Append(s[i]);
                i++;
            }
        }

        if (i >= s.Length)
        {
            throw new TemplateException($"{origin} line {line}: string literal is not closed", line);
        }

        return (sb.ToString(), i + 1);
    }
}
