//! A trained checkpoint exported as GGUF is a model mycel-infer loads and serves: its logits
//! follow the training forward pass (up to Q8_0 rounding), and a receipt for an answer from it
//! passes the subnet validator's re-run on a second, independently loaded copy.

use std::ops::ControlFlow;

use candle_core::{Device, Tensor};
use mycel_infer::receipt::{
    receipt_for_generation, CanonicalRequest, SamplingParams, SignedReceipt,
};
use mycel_infer::Model as Served;
use mycel_subnet::validator::challenge::{rerun, Answer};
use mycel_train::corpus::{load_default, DefaultCorpus};
use mycel_train::export::export_gguf;
use mycel_train::inner::{train_inner, InnerConfig};
use mycel_train::model::{Model, ModelConfig, Params};

const MODEL: ModelConfig = ModelConfig::TINY;

#[test]
fn an_exported_checkpoint_is_served_with_receipts_that_verify_by_re_running() {
    let DefaultCorpus {
        corpus,
        tokenizer,
        tokenizer_gguf: smollm,
    } = load_default().unwrap();

    // a few inner steps, so the logits have shape worth comparing
    let inner = InnerConfig {
        steps: 6,
        batch: 4,
        ..InnerConfig::default()
    };
    let start = Params::init(MODEL, [11; 32]).unwrap().to_flat().unwrap();
    let windows = corpus.shard(b"exporter", 0, inner.windows_per_round(), MODEL.context + 1);
    let outcome = train_inner(MODEL, &start, &inner, &windows, &mut |_, _| {}).unwrap();
    let trained: Vec<f32> = start
        .iter()
        .zip(&outcome.pseudo_gradient)
        .map(|(s, d)| s - d)
        .collect();
    let params = Params::from_flat(MODEL, &trained).unwrap();

    let dir = std::env::temp_dir().join(format!("mycel-train-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("round-0.gguf");
    export_gguf(&params, &smollm, "mycel-train test", &path).unwrap();

    // the served model's logits against the training forward pass, position by position
    let served = Served::load(&path).unwrap();
    assert_eq!(served.info().context_length, MODEL.context as u64);
    let tokens = tokenizer.encode(
        "Fellow-Citizens of the Senate and House of Representatives:",
        false,
    );
    let reference = Model::new(&params)
        .unwrap()
        .logits(
            &Tensor::new(tokens.as_slice(), &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap(),
        )
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let mut decoder = served.decoder();
    let mut agree = 0;
    for (i, token) in tokens.iter().enumerate() {
        let logits = decoder.feed(&[*token]).unwrap();
        let want = &reference[i];
        let spread = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = logits
            .iter()
            .zip(want)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            worst < 0.05 * spread + 0.05,
            "position {i}: logits differ by {worst} (scale {spread})"
        );
        let argmax = |v: &[f32]| (0..v.len()).max_by(|a, b| v[*a].total_cmp(&v[*b])).unwrap();
        agree += usize::from(argmax(&logits) == argmax(want));
    }
    assert!(
        agree * 10 >= tokens.len() * 9,
        "top token agrees at {agree} of {} positions",
        tokens.len()
    );

    // an answer and its signed receipt, re-run by the validator's code on a fresh load
    let params = SamplingParams {
        temperature: 0.7,
        top_p: 0.9,
        top_k: 40,
        seed: 7,
        max_tokens: 16,
        stop: Vec::new(),
    };
    let request = CanonicalRequest::completion("The state of the Union is".into(), &params);
    let generation = served
        .execute(&request, &mut |_| ControlFlow::Continue(()))
        .unwrap();
    assert!(!generation.output_tokens.is_empty());
    let signer = mycel_types::keys::dev_signer(3).unwrap();
    let receipt = receipt_for_generation(1, signer.address(), &served, &request, &generation, 5);
    let signed = SignedReceipt::sign(receipt, 1337, &signer).unwrap();
    signed.verify().unwrap();
    let answer = Answer {
        request,
        receipt: signed,
        text: generation.text.clone(),
    };
    let fresh = Served::load(&path).unwrap();
    assert_eq!(fresh.id(), served.id());
    rerun(&fresh, &answer).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
