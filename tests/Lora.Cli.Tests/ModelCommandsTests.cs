using System.Text.Json;
using static Lora.Cli.Tests.CliFixtures;

namespace Lora.Cli.Tests;

/// <summary><c>lora eval / merge / inspect / generate</c> on the reference fixtures.</summary>
public sealed class ModelCommandsTests
{
    private static JsonElement Json(string stdout)
    {
        Assert.Single(stdout.TrimEnd('\n').Split('\n'));
        return JsonDocument.Parse(stdout).RootElement;
    }

    [Theory]
    [InlineData("llama_qv")]
    [InlineData("qwen2_all_linear")]
    [InlineData("gpt2_c_attn")]
    public void Eval_of_the_base_model_equals_hf_loss(string @case)
    {
        var (code, stdout, stderr) = Run("eval", "--model", PeftFixture(@case, "base"), "--data", InputIdsJsonl(@case), "--json", "--device", "cpu");
        Assert.True(code == 0, stderr);
        var json = Json(stdout);
        Assert.Equal(["loss", "perplexity", "tokens"], json.EnumerateObject().Select(p => p.Name));
        var expected = ReferenceLoss(@case, "base_logits");
        Assert.Equal(expected, json.GetProperty("loss").GetDouble(), 1e-4 * expected);
        Assert.Equal(Math.Exp(json.GetProperty("loss").GetDouble()), json.GetProperty("perplexity").GetDouble(), 1e-9);
        Assert.Equal(2 * 15, json.GetProperty("tokens").GetInt64());
    }

    [Theory]
    [InlineData("llama_qv", "adapter", "lora_logits", false)]
    [InlineData("llama_dora_qv", "adapter", "adapter_logits", false)]
    [InlineData("qwen2_all_linear", "adapter_trained", "trained_logits", false)]
    [InlineData("qwen2_all_linear", "adapter_trained", "merged_logits", true)]
    [InlineData("gpt2_c_attn", "adapter_trained", "merged_logits", true)]
    [InlineData("llama_ia3", "adapter", "adapter_logits", false)]
    [InlineData("llama_ia3", "adapter", "adapter_logits", true)]
    public void Eval_with_an_adapter_equals_peft_loss(string @case, string adapter, string logits, bool merge)
    {
        string[] args = ["eval", "--model", PeftFixture(@case, "base"), "--adapter", PeftFixture(@case, adapter), "--data", InputIdsJsonl(@case), "--json"];
        var (code, stdout, stderr) = Run(merge ? [.. args, "--merge"] : args);
        Assert.True(code == 0, stderr);
        var expected = ReferenceLoss(@case, logits);
        Assert.Equal(expected, Json(stdout).GetProperty("loss").GetDouble(), 1e-4 * expected);
    }

    [Theory]
    [InlineData("llama_qv")]
    [InlineData("gpt2_c_attn")]
    public void Merge_writes_a_checkpoint_that_evaluates_to_merged_logits(string @case)
    {
        var output = Path.Combine(TempDirectory(), "merged");
        var (code, stdout, stderr) = Run("merge", "--model", PeftFixture(@case, "base"), "--adapter", PeftFixture(@case, "adapter_trained"), "--out", output, "--json");
        Assert.True(code == 0, stderr);
        Assert.Contains("model.safetensors", Json(stdout).GetProperty("files").EnumerateArray().Select(e => e.GetString()));
        Assert.True(File.Exists(Path.Combine(output, "config.json")));

        (code, stdout, stderr) = Run("eval", "--model", output, "--data", InputIdsJsonl(@case), "--json");
        Assert.True(code == 0, stderr);
        var expected = ReferenceLoss(@case, "merged_logits");
        Assert.Equal(expected, Json(stdout).GetProperty("loss").GetDouble(), 1e-4 * expected);

        // A second merge into the same directory would overwrite a checkpoint: refused.
        (code, _, stderr) = Run("merge", "--model", PeftFixture(@case, "base"), "--adapter", PeftFixture(@case, "adapter_trained"), "--out", output);
        Assert.Equal(1, code);
        Assert.Contains("not empty", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Inspect_shows_targets_and_peft_parameter_summary()
    {
        var (code, stdout, stderr) = Run("inspect", "--model", PeftFixture("llama_qv", "base"), "--targets", "q_proj|v_proj", "--json");
        Assert.True(code == 0, stderr);
        var json = Json(stdout);
        Assert.Equal(
            ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj", "model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"],
            json.GetProperty("targets").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(3584, json.GetProperty("trainable_params").GetInt64());
        Assert.StartsWith("trainable params: 3,584 || all params: ", json.GetProperty("summary").GetString(), StringComparison.Ordinal);

        (code, stdout, _) = Run("inspect", "--model", PeftFixture("llama_qv", "base"), "--adapter", PeftFixture("llama_qv", "adapter"));
        Assert.Equal(0, code);
        Assert.Contains("model.layers.1.self_attn.v_proj  LinearLayer 64→32  <- LoRA (default)", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Inspect_with_a_target_that_matches_nothing_lists_the_layers()
    {
        var (code, stdout, stderr) = Run("inspect", "--model", PeftFixture("llama_qv", "base"), "--targets", "x_proj");
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.StartsWith("error: target_modules 'x_proj' matches no linear layer. Available: lm_head, q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj.", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Generate_streams_greedy_text_and_json_has_the_tokens()
    {
        var model = ModelWithTokenizer("llama_qv");
        var (code, stdout, stderr) = Run("generate", "--model", model, "--prompt", "Hello", "--max-new-tokens", "8", "--json");
        Assert.True(code == 0, stderr);
        var json = Json(stdout);
        Assert.Equal(8, json.GetProperty("tokens").GetArrayLength());
        Assert.Equal("length", json.GetProperty("finish_reason").GetString());

        (code, var text, stderr) = Run("generate", "--model", model, "--prompt", "Hello", "--max-new-tokens", "8");
        Assert.True(code == 0, stderr);
        Assert.Equal(json.GetProperty("text").GetString() + "\n", text);
    }

    [Fact]
    public void Generate_with_a_template_renders_the_instruction_as_training_does()
    {
        var model = ModelWithTokenizer("llama_qv");
        var (code, stdout, stderr) = Run("generate", "--model", model, "--template", "alpaca", "--instruction", "What is the opposite of hot?", "--max-new-tokens", "6", "--json");
        Assert.True(code == 0, stderr);
        var templated = Json(stdout);

        // The same prompt written out by hand: Stanford Alpaca's no-input prompt, up to "### Response:".
        var prompt = "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n" +
            "### Instruction:\nWhat is the opposite of hot?\n\n### Response:";
        (code, stdout, stderr) = Run("generate", "--model", model, "--prompt", prompt, "--max-new-tokens", "6", "--json");
        Assert.True(code == 0, stderr);
        var raw = Json(stdout);
        Assert.Equal(raw.GetProperty("text").GetString(), templated.GetProperty("text").GetString());
        Assert.Equal(raw.GetProperty("tokens").ToString(), templated.GetProperty("tokens").ToString());

        // With an input, the template's input variant; --template defaults to alpaca.
        (code, var withInput, stderr) = Run("generate", "--model", model, "--instruction", "Add.", "--input", "2 3", "--max-new-tokens", "6", "--json");
        Assert.True(code == 0, stderr);
        (code, var byHand, stderr) = Run("generate", "--model", model, "--max-new-tokens", "6", "--json", "--prompt",
            "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n" +
            "### Instruction:\nAdd.\n\n### Input:\n2 3\n\n### Response:");
        Assert.True(code == 0, stderr);
        Assert.Equal(Json(byHand).GetProperty("tokens").ToString(), Json(withInput).GetProperty("tokens").ToString());
    }

    [Theory]
    [InlineData(new[] { "--prompt", "x", "--instruction", "y" }, "not both or neither")]
    [InlineData(new[] { "--max-new-tokens", "2" }, "not both or neither")]
    [InlineData(new[] { "--prompt", "x", "--template", "alpaca" }, "--template and --input render an --instruction")]
    [InlineData(new[] { "--instruction", "x", "--template", "nonsense" }, "unknown prompt template")]
    public void Generate_prompt_options_are_checked(string[] options, string expected)
    {
        var (code, stdout, stderr) = Run(["generate", "--model", ModelWithTokenizer("llama_qv"), .. options]);
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.Contains(expected, stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Generate_with_a_missing_model_directory_names_it()
    {
        var (code, _, stderr) = Run("generate", "--model", "/missing/model", "--prompt", "x");
        Assert.Equal(1, code);
        Assert.Equal("error: /missing/model: model directory not found.\n", stderr);
    }

    [Fact]
    public void Eval_exact_match_scores_the_answers_generate_gives()
    {
        var model = ModelWithTokenizer("llama_qv");
        var (code, stdout, stderr) = Run("generate", "--model", model, "--template", "alpaca", "--instruction", "What is the opposite of hot?", "--max-new-tokens", "5", "--json");
        Assert.True(code == 0, stderr);
        var answer = JsonDocument.Parse(stdout).RootElement.GetProperty("text").GetString()!;
        var data = Path.Combine(TempDirectory(), "qa.jsonl");
        File.WriteAllLines(data, [
            JsonSerializer.Serialize(new { instruction = "What is the opposite of hot?", input = "", output = answer }),
            JsonSerializer.Serialize(new { instruction = "What is the opposite of up?", input = "", output = "a word this model cannot say" })]);
        (code, stdout, stderr) = Run("eval", "--model", model, "--data", data, "--exact-match", "--max-new-tokens", "5", "--json", "--device", "cpu");
        Assert.True(code == 0, stderr);
        var json = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(1, json.GetProperty("exact_match_correct").GetInt32());
        Assert.Equal(2, json.GetProperty("exact_match_total").GetInt32());
        Assert.Equal(0.5, json.GetProperty("exact_match").GetDouble());

        (code, _, stderr) = Run("eval", "--model", model, "--data", InputIdsJsonl("llama_qv"), "--exact-match");
        Assert.Equal(1, code);
        Assert.Contains("--exact-match needs Alpaca records", stderr);
    }

    [Theory]
    [InlineData("eval", "--data", "missing.jsonl", "missing.jsonl: file not found")]
    [InlineData("eval", "--adapter", "/nonexistent/adapter", "/nonexistent/adapter: file not found")]
    public void User_errors_are_one_line_without_a_stack_trace(string command, string option, string value, string expected)
    {
        var data = option == "--data" ? value : InputIdsJsonl("llama_qv");
        string[] args = [command, "--model", PeftFixture("llama_qv", "base"), "--data", data];
        if (option == "--adapter")
            args = [.. args, "--adapter", value];
        var (code, stdout, stderr) = Run(args);
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.Single(stderr.TrimEnd('\n').Split('\n'));
        Assert.StartsWith("error: ", stderr, StringComparison.Ordinal);
        Assert.Contains(expected, stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);
    }
}

public sealed class ParseErrorTests
{
    [Fact]
    public void Unknown_or_missing_options_are_error_lines_on_stderr_and_nothing_on_stdout()
    {
        var (code, stdout, stderr) = CliFixtures.Run("eval", "--model", "m", "--bogus", "1", "--json");
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        var lines = stderr.TrimEnd('\n').Split('\n');
        Assert.Contains("error: Unrecognized command or argument '--bogus'.", lines);
        Assert.Contains("error: Option '--data' is required.", lines);
        Assert.Equal("(run 'lora eval --help' for the options)", lines[^1]);
    }
}
