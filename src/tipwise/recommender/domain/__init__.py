"""Pure rules of the recommender: eligibility, features, reactions."""
