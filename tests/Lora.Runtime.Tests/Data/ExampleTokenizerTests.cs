using Lora.Data;
using Lora.Tests;
using Lora.Tokenization;

namespace Lora.Runtime.Tests.Data;

public class ExampleTokenizerTests
{
    private static HfTokenizer Tokenizer(string name) => HfTokenizer.Load(TokenizerFixtures.Directory(name));

    /// <summary>The label runs that are not -100, each decoded.</summary>
    private static List<string> TargetRuns(HfTokenizer tokenizer, TokenizedExample example)
    {
        var runs = new List<string>();
        var run = new List<int>();
        for (var i = 0; i <= example.Labels.Length; i++)
        {
            if (i < example.Labels.Length && example.Labels[i] != TokenizedExample.IgnoreIndex)
            {
                run.Add(example.Labels[i]);
            }
            else if (run.Count > 0)
            {
                runs.Add(tokenizer.Decode(run));
                run.Clear();
            }
        }

        return runs;
    }

    [Fact]
    public void Alpaca_labels_mask_exactly_the_prompt_tokens()
    {
        var tokenizer = Tokenizer("llama2");
        var record = new AlpacaRecord("Name the capital of France.", "", "Paris is the capital of France.");
        var example = new ExampleTokenizer(tokenizer, new DataOptions()).Tokenize(record)!;

        var prompt = tokenizer.Encode(AlpacaTemplate.Prompt(record));   // Stanford: tokenizer(source), BOS included
        var full = tokenizer.Encode(AlpacaTemplate.Prompt(record) + record.Output + "</s>");
        Assert.Equal(full, example.InputIds);
        Assert.Equal(tokenizer.BosTokenId, example.InputIds[0]);
        Assert.Equal(tokenizer.EosTokenId, example.InputIds[^1]);
        Assert.All(example.Labels[..prompt.Length], l => Assert.Equal(TokenizedExample.IgnoreIndex, l));
        Assert.Equal(example.InputIds[prompt.Length..], example.Labels[prompt.Length..]);
        Assert.Equal(["Paris is the capital of France.</s>"], TargetRuns(tokenizer, example));
    }

    [Theory]
    [InlineData("llama2")]
    [InlineData("llama3")]
    [InlineData("qwen3")]
    public void Alpaca_target_is_output_plus_eos_for_each_tokenizer(string name)
    {
        var tokenizer = Tokenizer(name);
        var record = new AlpacaRecord("Translate to French.", "cheese", " fromage");
        var tokenizerStep = new ExampleTokenizer(tokenizer, new DataOptions());
        var example = tokenizerStep.Tokenize(record)!;
        var prompt = tokenizer.Encode(AlpacaTemplate.Prompt(record));
        Assert.Equal(prompt, example.InputIds[..prompt.Length]);
        Assert.Equal(prompt.Length, example.Labels.TakeWhile(l => l == TokenizedExample.IgnoreIndex).Count());
        Assert.Equal(tokenizer.EosTokenId, example.Labels[^1]);
        Assert.Equal("fromage", tokenizer.Decode(example.Labels.Where(l => l >= 0), skipSpecialTokens: true).Trim());
        Assert.Equal(0, tokenizerStep.Stats.PromptBoundaryMismatches);
    }

    [Fact]
    public void Train_on_prompt_keeps_every_label()
    {
        var tokenizer = Tokenizer("llama2");
        var example = new ExampleTokenizer(tokenizer, new DataOptions { TrainOnPrompt = true }).Tokenize(new AlpacaRecord("Say hi.", "", "hi"))!;
        Assert.Equal(example.InputIds, example.Labels);
    }

    private static ChatRecord TwoTurnChat() => new(
    [
        new ChatMessage("system", "You are terse."),
        new ChatMessage("user", "Hi"),
        new ChatMessage("assistant", "Hello!"),
        new ChatMessage("user", "Capital of France?"),
        new ChatMessage("assistant", "Paris."),
    ]);

    [Fact]
    public void Llama2_chat_trains_on_assistant_turns_only()
    {
        var tokenizer = Tokenizer("llama2");
        var options = new DataOptions { Template = PromptTemplate.Llama2Chat };
        var example = new ExampleTokenizer(tokenizer, options).Tokenize(TwoTurnChat())!;
        var text = string.Concat(PromptTemplate.Llama2Chat.Render(TwoTurnChat(), new TemplateTokens("<s>", "</s>")).Select(s => s.Text));
        Assert.Equal(tokenizer.Encode(text, addSpecialTokens: false), example.InputIds);
        Assert.Equal(2, example.InputIds.Count(id => id == tokenizer.BosTokenId)); // one <s> per user turn, none added by the tokenizer
        Assert.Equal(tokenizer.BosTokenId, example.InputIds[0]);
        Assert.NotEqual(tokenizer.BosTokenId, example.InputIds[1]);
        Assert.Equal(["Hello! </s>", "Paris. </s>"], TargetRuns(tokenizer, example).Select(r => r.Trim()));
    }

    [Fact]
    public void ChatMl_trains_on_assistant_content_and_im_end_only()
    {
        var tokenizer = Tokenizer("qwen3");
        var example = new ExampleTokenizer(tokenizer, new DataOptions { Template = PromptTemplate.ChatMl }).Tokenize(TwoTurnChat())!;
        Assert.Equal(["Hello!<|im_end|>", "Paris.<|im_end|>"], TargetRuns(tokenizer, example));
        Assert.Equal(TokenizedExample.IgnoreIndex, example.Labels[^1]); // the trailing "\n"
        Assert.Equal(tokenizer.TokenToId("<|im_start|>"), example.InputIds[0]);
    }

    [Fact]
    public void Chat_without_an_assistant_turn_is_dropped_and_counted()
    {
        var tokenizerStep = new ExampleTokenizer(Tokenizer("qwen3"), new DataOptions());
        Assert.Null(tokenizerStep.Tokenize(new ChatRecord([new("user", "hello?")])));
        Assert.Equal(1, tokenizerStep.Stats.DroppedNoTarget);
    }

    [Fact]
    public void Truncation_cuts_from_the_end_and_drops_examples_with_no_target_left()
    {
        var tokenizer = Tokenizer("llama2");
        var options = new DataOptions { MaxLength = 48 };
        var tokenizerStep = new ExampleTokenizer(tokenizer, options);
        var longOutput = new AlpacaRecord("Count.", "", string.Join(' ', Enumerable.Range(1, 100)));
        var longPrompt = new AlpacaRecord(string.Join(' ', Enumerable.Range(1, 100)), "", "done");
        var fits = new AlpacaRecord("Say hi.", "", "hi");
        var examples = tokenizerStep.Tokenize([longOutput, longPrompt, fits]).ToList();

        Assert.Equal(2, examples.Count);
        var truncated = examples[0];
        Assert.Equal(48, truncated.InputIds.Length);
        Assert.Equal(tokenizer.Encode(AlpacaTemplate.Prompt(longOutput) + longOutput.Output + "</s>")[..48], truncated.InputIds);
        Assert.NotEqual(tokenizer.EosTokenId, truncated.InputIds[^1]);
        var stats = tokenizerStep.Stats;
        Assert.Equal(3, stats.Records);
        Assert.Equal(2, stats.Examples);
        Assert.Equal(2, stats.Truncated);
        Assert.Equal(1, stats.DroppedNoTarget);
        Assert.Equal(examples.Sum(e => e.InputIds.Length), stats.Tokens);
        Assert.Equal(examples.Sum(e => e.PredictedTokens), stats.TargetTokens);
        Assert.Equal("dataset: 2 of 3 truncated to max_length; 1 dropped (no target token left after truncation).", stats.Warning);
    }

    [Fact]
    public void Plain_text_lines_become_max_length_blocks_with_one_bos()
    {
        var tokenizer = Tokenizer("llama2");
        var lines = Enumerable.Range(0, 50).Select(i => new TextLine($"Line number {i} of the text.\n")).ToList();
        var tokenizerStep = new ExampleTokenizer(tokenizer, new DataOptions { MaxLength = 64 });
        var blocks = tokenizerStep.Tokenize(lines).ToList();

        var stream = new List<int> { tokenizer.BosTokenId!.Value };
        foreach (var line in lines)
            stream.AddRange(tokenizer.Encode(line.Text, addSpecialTokens: false));
        Assert.All(blocks[..^1], b => Assert.Equal(64, b.InputIds.Length));
        Assert.Equal(stream, blocks.SelectMany(b => b.InputIds));
        Assert.All(blocks, b => Assert.Equal(b.InputIds, b.Labels));
        Assert.Equal(50, tokenizerStep.Stats.Records);
        Assert.Equal(blocks.Count, tokenizerStep.Stats.Examples);
    }

    [Fact]
    public void Text_documents_end_with_eos_and_count_every_token()
    {
        var tokenizer = Tokenizer("llama3");
        var example = new ExampleTokenizer(tokenizer, new DataOptions()).Tokenize(new TextRecord("Hello world"))!;
        Assert.Equal([.. tokenizer.Encode("Hello world"), tokenizer.EosTokenId!.Value], example.InputIds);
        Assert.Equal(example.InputIds, example.Labels);
    }

    [Fact]
    public void Max_length_below_two_is_rejected()
    {
        Assert.Throws<LoraException>(() => new ExampleTokenizer(Tokenizer("qwen3"), new DataOptions { MaxLength = 1 }));
    }
}
