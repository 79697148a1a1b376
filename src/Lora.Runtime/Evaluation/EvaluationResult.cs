namespace Lora.Evaluation;

/// <summary>Token-weighted mean loss over a dataset, its perplexity (exp(loss)) and the tokens counted.</summary>
public sealed record EvaluationResult(double Loss, double Perplexity, long Tokens);
