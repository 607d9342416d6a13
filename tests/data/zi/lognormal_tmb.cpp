// glmmTMB's lognormal likelihood (glmmTMB >= 1.1.8, src/glmmTMB.cpp, lognormal_family) for
// y ~ X beta + (1 | g), log link: mu = exp(eta) is the mean and sigma = exp(betad) the SD of y
// on the response scale.  Used by make_zi.R because glmmTMB 1.1.5 has no lognormal family.
#include <TMB.hpp>

template<class Type>
Type objective_function<Type>::operator() ()
{
  DATA_VECTOR(y);
  DATA_MATRIX(X);
  DATA_IVECTOR(g);
  PARAMETER_VECTOR(beta);
  PARAMETER(betad);   // log SD on the response scale
  PARAMETER(theta);   // log SD of the random intercept (glmmTMB's theta)
  PARAMETER_VECTOR(b);

  Type jnll = 0;
  Type sdb = exp(theta);
  for (int j = 0; j < b.size(); j++) jnll -= dnorm(b(j), Type(0), sdb, true);

  vector<Type> eta = X * beta;
  Type phi = exp(betad);
  for (int i = 0; i < y.size(); i++) {
    Type e = eta(i) + b(g(i));
    Type mu = exp(e);
    Type s1 = logspace_add(Type(2) * (log(phi) - log(mu)), Type(0)); // log(1 + (phi/mu)^2) = log-scale variance
    Type s2 = log(mu) - s1 / Type(2);                                 // log-scale mean
    Type s3 = sqrt(s1);                                               // log-scale SD
    jnll -= dnorm(log(y(i)), s2, s3, true) - log(y(i));
  }
  return jnll;
}
