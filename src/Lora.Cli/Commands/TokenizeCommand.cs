using System.CommandLine;
using System.Text.Json;
using Lora.Tokenization;

namespace Lora.Cli.Commands;

/// <summary><c>lora tokenize</c>: shows the ids a model's tokenizer gives for a text, the same as HF
/// <c>tokenizers</c> (special tokens added by default, as HF does), so a user can check prompts and templates.</summary>
internal static class TokenizeCommand
{
    public static Command Create(TextWriter stdout)
    {
        var tokenizer = new Option<string>("--tokenizer")
        {
            Description = "Model directory holding tokenizer.json (or tokenizer.model / *.tiktoken) and tokenizer_config.json.",
            Required = true,
        };
        var text = new Option<string>("--text") { Description = "The text to encode.", Required = true };
        var noSpecial = new Option<bool>("--no-special") { Description = "Do not add bos/eos (HF add_special_tokens=False)." };
        var json = CommonOptions.Json();
        var command = new Command("tokenize", "Encode a text with a model's tokenizer and print the token ids.")
        {
            tokenizer,
            text,
            noSpecial,
            json,
        };
        command.SetAction(parse =>
        {
            var tok = HfTokenizer.Load(parse.GetValue(tokenizer)!);
            var ids = tok.Encode(parse.GetValue(text)!, addSpecialTokens: !parse.GetValue(noSpecial));
            if (parse.GetValue(json))
            {
                stdout.WriteLine(JsonSerializer.Serialize(new { ids }));
                return 0;
            }

            stdout.WriteLine($"{ids.Length} tokens ({Path.GetFileName(tok.Source)}, vocabulary {tok.VocabSize})");
            stdout.WriteLine($"ids: [{string.Join(", ", ids)}]");
            var width = ids.Length == 0 ? 1 : ids.Max().ToString(System.Globalization.CultureInfo.InvariantCulture).Length;
            foreach (var id in ids)
            {
                stdout.WriteLine($"  {id.ToString(System.Globalization.CultureInfo.InvariantCulture).PadLeft(width)}  {Printable(tok.IdToToken(id))}");
            }

            return 0;
        });
        return command;
    }

    // Shows control characters (newline, tab) as escapes so one token stays on one line.
    private static string Printable(string? token) =>
        token is null ? "(unknown id)" : JsonSerializer.Serialize(token, PrintableOptions)[1..^1];

    private static readonly JsonSerializerOptions PrintableOptions = new()
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };
}
