using Lora.Tests;
using Lora.Tokenization;

namespace Lora.Runtime.Tests.Tokenization;

/// <summary>Malformed or unsupported tokenizer files fail with a <see cref="LoraException"/> naming the file and
/// the problem.</summary>
public sealed class HfTokenizerLoadErrorTests
{
    [Fact]
    public void Missing_directory_is_named()
    {
        var missing = Path.Combine(TokenizerFixtures.EmptyDirectory(), "nope");
        var e = Assert.Throws<LoraException>(() => HfTokenizer.Load(missing));
        Assert.Contains(missing, e.Message);
        Assert.Contains("does not exist", e.Message);
    }

    [Fact]
    public void Directory_without_tokenizer_files_names_tokenizer_json()
    {
        var dir = TokenizerFixtures.EmptyDirectory();
        File.WriteAllText(Path.Combine(dir, "config.json"), "{}");
        var e = Assert.Throws<LoraException>(() => HfTokenizer.Load(dir));
        Assert.Contains(Path.Combine(dir, "tokenizer.json"), e.Message);
        Assert.Contains("not found", e.Message);
    }

    [Fact]
    public void Bad_json_reports_file_and_line()
    {
        var dir = TokenizerFixtures.EmptyDirectory();
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), "{\n  \"model\": {\n    \"type\": \"BPE\",,\n  }\n}");
        var e = Assert.Throws<LoraException>(() => HfTokenizer.Load(dir));
        Assert.StartsWith(Path.Combine(dir, "tokenizer.json") + ": invalid JSON at line 3", e.Message);
    }

    [Fact]
    public void Bad_tokenizer_config_json_is_named()
    {
        var dir = TokenizerFixtures.EmptyDirectory();
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), TinyTokenizerJson());
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), "{\"bos_token\": ");
        var e = Assert.Throws<LoraException>(() => HfTokenizer.Load(dir));
        Assert.StartsWith(Path.Combine(dir, "tokenizer_config.json") + ": invalid JSON at line 1", e.Message);
    }

    [Fact]
    public void Unsupported_model_type_is_named()
    {
        var dir = TokenizerFixtures.EmptyDirectory();
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), """{"model": {"type": "WordPiece", "vocab": {"a": 0}}}""");
        var e = Assert.Throws<LoraException>(() => HfTokenizer.Load(dir));
        Assert.Equal($"{Path.Combine(dir, "tokenizer.json")}: 'model.type': model type \"WordPiece\" is not supported (only BPE)", e.Message);
    }

    [Fact]
    public void Missing_field_and_unsupported_pre_tokenizer_are_named()
    {
        var dir = TokenizerFixtures.EmptyDirectory();
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), """{"model": {"type": "BPE", "merges": []}}""");
        Assert.EndsWith("'model.vocab' is missing", Assert.Throws<LoraException>(() => HfTokenizer.Load(dir)).Message);

        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), TinyTokenizerJson(preTokenizer: """{"type": "BertPreTokenizer"}"""));
        Assert.EndsWith("'pre_tokenizer.type': pre_tokenizer type \"BertPreTokenizer\" is not supported", Assert.Throws<LoraException>(() => HfTokenizer.Load(dir)).Message);
    }

    [Fact]
    public void Config_token_missing_from_vocabulary_is_named()
    {
        var dir = TokenizerFixtures.EmptyDirectory();
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), TinyTokenizerJson());
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), """{"eos_token": "</s>"}""");
        var e = Assert.Throws<LoraException>(() => HfTokenizer.Load(dir));
        Assert.Contains("tokenizer_config.json: 'eos_token' \"</s>\" is not in the vocabulary", e.Message);
    }

    [Fact]
    public void Added_token_lstrip_and_rstrip_swallow_neighbouring_spaces()
    {
        var dir = TokenizerFixtures.EmptyDirectory();
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), TinyTokenizerJson(lstrip: true));
        Assert.Equal([2, 3, 1], HfTokenizer.Load(dir).Encode("ab <x> b"));

        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), TinyTokenizerJson(lstrip: false));
        Assert.Equal([2, 4, 3, 1], HfTokenizer.Load(dir).Encode("ab <x> b"));
    }

    // vocab a, b, ab, <x>, " "; one merge; <x> is an added token that strips spaces on its right and maybe its left.
    private static string TinyTokenizerJson(bool lstrip = false, string preTokenizer = "null") => $$"""
        {
          "added_tokens": [{"id": 3, "content": "<x>", "special": true, "lstrip": {{(lstrip ? "true" : "false")}}, "rstrip": true, "normalized": false}],
          "normalizer": null,
          "pre_tokenizer": {{preTokenizer}},
          "post_processor": null,
          "decoder": null,
          "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "<x>": 3, " ": 4}, "merges": ["a b"]}
        }
        """;
}
