// The AdamW step shared by the AVX2 and AVX-512 builds. Included inside namespace
// ne::cpu::avx2 / ne::cpu::avx512 (in an anonymous namespace there) after small_ops_vec.inl.
// It performs the operations of the scalar reference in adamw.cpp, in the same order and with
// the same fused multiply-adds, so that it gives the reference's bits. This file includes
// nothing.

void adamw_step_vectors(const AdamwConstants& k, float* param, const float* grad, float* m, float* v, int64_t count) {
    const V gradient_scale = Vec::broadcast(k.gradient_scale);
    const V beta1 = Vec::broadcast(k.beta1), beta2 = Vec::broadcast(k.beta2);
    const V one_minus_beta1 = Vec::broadcast(k.one_minus_beta1), one_minus_beta2 = Vec::broadcast(k.one_minus_beta2);
    const V inverse_bias_correction1 = Vec::broadcast(k.inverse_bias_correction1);
    const V inverse_bias_correction2 = Vec::broadcast(k.inverse_bias_correction2);
    const V epsilon = Vec::broadcast(k.epsilon), weight_decay = Vec::broadcast(k.weight_decay);
    const V minus_learning_rate = Vec::broadcast(-k.learning_rate);
    for_each_vector(count, [&](int64_t i, auto lanes) {
        const V g = Vec::mul(lanes.load(grad + i), gradient_scale);
        const V m_new = Vec::fmadd(beta1, lanes.load(m + i), Vec::mul(one_minus_beta1, g));
        const V v_new = Vec::fmadd(beta2, lanes.load(v + i), Vec::mul(one_minus_beta2, Vec::mul(g, g)));
        const V m_hat = Vec::mul(m_new, inverse_bias_correction1);
        const V denominator = Vec::add(Vec::sqrt(Vec::mul(v_new, inverse_bias_correction2)), epsilon);
        const V p = lanes.load(param + i);
        const V update = Vec::fmadd(weight_decay, p, Vec::div(m_hat, denominator));
        lanes.store(m + i, m_new);
        lanes.store(v + i, v_new);
        lanes.store(param + i, Vec::fmadd(minus_learning_rate, update, p));
    });
}
