using Lora.Data;
using Lora.Data.Preference;

namespace Lora.Runtime.Tests.Alignment;

/// <summary>TRL's preference and prompt formats: text, conversations, implicit prompts, pre-tokenised ids, errors.</summary>
public class PreferenceDataTests
{
    private static string File(string name, params string[] lines)
    {
        var path = Path.Combine(Fixtures.TempDirectory(), name);
        System.IO.File.WriteAllLines(path, lines);
        return path;
    }

    private static int[] Bytes(string s) => s.Select(c => (int)c).ToArray();

    [Fact]
    public void Text_pairs_tokenise_prompt_and_completions_as_TRL_with_eos_appended()
    {
        var tokenizer = AlignmentFixtures.Tokenizer();
        var path = File("p.jsonl", """{"prompt": "Sky: ", "chosen": "blue", "rejected": "green</s>"}""");
        var pair = Assert.Single(PreferenceDataset.Load(path, tokenizer).Pairs);
        Assert.Equal([256, .. Bytes("Sky: ")], pair.PromptIds);                   // the tokenizer's BOS, then the prompt
        Assert.Equal([.. Bytes("blue"), AlignmentFixtures.Eos], pair.ChosenIds);   // eos appended
        Assert.Equal([.. Bytes("green"), AlignmentFixtures.Eos], pair.RejectedIds); // already ends with eos: not doubled
        Assert.Null(pair.Margin);
        Assert.Equal($"{path}:1", pair.Location);
    }

    [Fact]
    public void Implicit_prompt_is_the_shared_prefix_and_the_space_goes_with_the_completions()
    {
        var (prompt, chosen, rejected) = ImplicitPrompt.Split("The sky is blue.", "The sky is green.");
        Assert.Equal(("The sky is", " blue.", " green."), (prompt, chosen, rejected));
        var tokenizer = AlignmentFixtures.Tokenizer();
        var path = File("p.json", """[{"chosen": "2+2=4", "rejected": "2+2=5", "margin": 0.5}]""");
        var pair = Assert.Single(PreferenceDataset.Load(path, tokenizer).Pairs);
        Assert.Equal([256, .. Bytes("2+2=")], pair.PromptIds);
        Assert.Equal([.. Bytes("4"), AlignmentFixtures.Eos], pair.ChosenIds);
        Assert.Equal(0.5, pair.Margin);
    }

    [Fact]
    public void Conversations_render_through_the_chat_template_with_the_generation_prompt_in_the_prompt()
    {
        var tokenizer = AlignmentFixtures.Tokenizer();
        var path = File("c.jsonl",
            """{"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hello"}], "rejected": [{"role": "assistant", "content": "Go"}]}""",
            """{"chosen": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}], "rejected": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "B"}]}""");
        var pairs = PreferenceDataset.Load(path, tokenizer).Pairs;
        Assert.Equal(Bytes("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"), pairs[0].PromptIds); // no BOS: chat templates write their own
        Assert.Equal(Bytes("Hello<|im_end|>\n"), pairs[0].ChosenIds);
        Assert.Equal(Bytes("Go<|im_end|>\n"), pairs[0].RejectedIds);
        Assert.Equal(Bytes("<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"), pairs[1].PromptIds); // implicit: the shared user turn
        Assert.Equal(Bytes("A<|im_end|>\n"), pairs[1].ChosenIds);

        var llama2 = PreferenceDataset.Load(path, tokenizer, PromptTemplate.Llama2Chat).Pairs;
        Assert.Equal([256, .. Bytes("[INST] Hi [/INST]")], llama2[0].PromptIds); // <s> written as text, matched to its id
        Assert.Equal([.. Bytes(" Hello "), AlignmentFixtures.Eos], llama2[0].ChosenIds);
    }

    [Fact]
    public void Pre_tokenised_pairs_are_used_as_given_without_a_tokenizer()
    {
        var path = File("t.jsonl",
            """{"prompt_input_ids": [1, 2], "chosen_input_ids": [3, 4], "rejected_input_ids": [5]}""",
            """{"prompt_input_ids": [7], "chosen_input_ids": [8], "rejected_input_ids": [9, 10], "margin": 1}""");
        var pairs = PreferenceDataset.Load(path, tokenizer: null).Pairs;
        Assert.Equal([1, 2], pairs[0].PromptIds);
        Assert.Equal([3, 4], pairs[0].ChosenIds);
        Assert.Equal([5], pairs[0].RejectedIds);
        Assert.Equal([7, 8], pairs[1].ChosenSequence);
        var newer = File("n.jsonl", """{"prompt_ids": [1], "chosen_ids": [2], "rejected_ids": [3]}""");
        Assert.Equal([2], Assert.Single(PreferenceDataset.Load(newer, null).Pairs).ChosenIds);
        var noPrompt = File("r.jsonl", """{"chosen_input_ids": [2, 3], "rejected_input_ids": [4]}""");
        Assert.Empty(Assert.Single(PreferenceDataset.Load(noPrompt, null).Pairs).PromptIds);
    }

    [Theory]
    [InlineData("""{"prompt": "a", "chosen": "b"}""", ":1: missing field \"rejected\".")]
    [InlineData("""{"prompt": "a", "chosen": 3, "rejected": "c"}""", ":1: field \"chosen\" must be a string or a list of {\"role\", \"content\"} messages, got a number.")]
    [InlineData("""{"chosen": [{"role": "user", "content": "a"}], "rejected": "c"}""", ":1: field \"rejected\" is text but \"chosen\" is a conversation.")]
    [InlineData("""{"chosen": [{"role": "robot", "content": "a"}], "rejected": [{"role": "user", "content": "b"}]}""", ":1: field \"chosen\"[0].role must be one of system, user, assistant, got \"robot\".")]
    [InlineData("""{"chosen_input_ids": [1, -2], "rejected_input_ids": [3]}""", ":1: field \"chosen_input_ids\"[1] is not a token id (a non-negative integer).")]
    [InlineData("""{"chosen_input_ids": [1]}""", ":1: pre-tokenised record (chosen_input_ids) is missing field \"rejected_input_ids\".")]
    [InlineData("""{"chosen": "a", "rejected": "b", "margin": "big"}""", ":1: field \"margin\" must be a finite number, got a string.")]
    [InlineData("""{"text": "a"}""", ":1: not a preference record (\"text\"); expected \"chosen\" and \"rejected\" (with an optional \"prompt\"), or \"chosen_input_ids\" and \"rejected_input_ids\".")]
    public void Bad_records_name_the_file_line_and_field(string line, string message)
    {
        var path = File("bad.jsonl", line);
        var e = Assert.Throws<LoraException>(() => PreferenceDataset.Load(path, AlignmentFixtures.Tokenizer()));
        Assert.Equal(path + message, e.Message);
    }

    [Fact]
    public void One_file_holds_one_format()
    {
        var path = File("mixed.jsonl", """{"chosen": "a", "rejected": "b"}""", "", """{"chosen_input_ids": [1], "rejected_input_ids": [2]}""");
        var e = Assert.Throws<LoraException>(() => PreferenceDataset.Load(path, AlignmentFixtures.Tokenizer()));
        Assert.Equal($"{path}:3: this record is pre-tokenised, but the file's first record is text; one file holds one format.", e.Message);
        var text = File("t.jsonl", """{"chosen": "a", "rejected": "b"}""");
        Assert.Contains("needs the model's tokenizer", Assert.Throws<LoraException>(() => PreferenceDataset.Load(text, null)).Message);
    }

    [Fact]
    public void Prompt_only_records_keep_their_other_fields_for_the_reward_functions()
    {
        var tokenizer = AlignmentFixtures.Tokenizer();
        var path = File("q.jsonl",
            """{"prompt": "2+2=", "answer": "4", "id": 7}""",
            """{"prompt": "3+3=", "answer": "6", "id": 8}""");
        var prompts = PromptDataset.Load(path, tokenizer).Prompts;
        Assert.Equal([256, .. Bytes("2+2=")], prompts[0].PromptIds);
        Assert.Equal("4", prompts[0].Record.Field("answer"));
        Assert.Equal(7, prompts[0].Record.Fields["id"].GetInt32());
        Assert.Equal("2+2=", prompts[0].PromptText);
        var chat = File("c.jsonl", """{"prompt": [{"role": "user", "content": "Hi"}]}""");
        Assert.Equal(Bytes("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"), Assert.Single(PromptDataset.Load(chat, tokenizer).Prompts).PromptIds);
        var ids = File("i.jsonl", """{"prompt_input_ids": [5, 6]}""");
        Assert.Equal([5, 6], Assert.Single(PromptDataset.Load(ids, null).Prompts).PromptIds);
        var bad = File("b.jsonl", """{"question": "x"}""");
        Assert.Equal($"{bad}:1: not a prompt record (\"question\"); expected \"prompt\" (text or messages) or \"prompt_input_ids\".", Assert.Throws<LoraException>(() => PromptDataset.Load(bad, tokenizer)).Message);
    }
}
